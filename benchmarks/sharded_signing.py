"""Sharded checkpoint signing overhead: sign + verify vs plain ``torch.distributed.checkpoint`` save / load.

One process writes the same state with DCP (Lightning's ``dcp.save(state, checkpoint_id=DIR)``
defaults: one ``.distcp`` file per rank plus ``.metadata``), with variants interleaved in
one run (their order rotated every repeat; median and minimum of ``--repeats``):

- ``plain``: ``dcp.save`` then ``dcp.load`` (``checkpoint_id=DIR``);
- ``signed``: ``dcp.save`` + ``sign_directory`` (every file hashed with BLAKE3, the
  default, ``DIR.sig`` written), then ``VerifiedFileSystemReader`` (every file opened and
  hashed against the signature) + ``dcp.load`` through it;
- ``signed sha256``: the same with ``hash_type="sha256"``;
- ``signed writer``: ``dcp.save`` through ``SigningFileSystemWriter`` (each shard hashed as
  it is written, ``.metadata`` too, ``DIR.sig`` written at the end: nothing read back; its
  ``save_s`` includes the signing), then the same verified load;
- ``signed async``: ``SignedCheckpointIO(async_save=True)``'s path: the directory is hashed
  and signed on a background thread, so ``save_s`` is the time the training loop is blocked;
  the load first waits for the signature (``load_s`` includes that wait).

The ratio ``signed / plain`` of the save + load round trip is the overhead (goal <= 1.10x):
``ratio_paired`` is the median over repeats of the ratio within one repeat (variants run
back to back, so drifting load from other processes cancels best), ``ratio_median`` the ratio
of the medians, ``ratio_min`` of the minima, and ``cpu_ratio`` the paired ratio of the
process's CPU time (all threads) for the round trip, which other load on the machine
disturbs least;
save and load are also shown apart, with the hashing phases (``sign_s``, ``verify_s``) and
the machine's single-thread SHA-256 and BLAKE3 rates measured in the same run. Checkpoints are written
under ``--dir`` (default: a temporary folder under /tmp) and removed after each repeat. With
``--cold`` every variant drops the checkpoint's pages from the page cache after its save (as a
checkpoint larger than memory would be): ``sign_directory`` then reads it back from disk, the
writer has hashed it already, and every load reads the disk (``sharded_signing_cold.json``).

Example::

    nice -n 10 python -m benchmarks.sharded_signing --size-mb 100 --repeats 5
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from cryptography.hazmat.primitives.asymmetric import ec

from benchmarks import common
from secure_train.integrity.checkpoint_io import SignedCheckpointIO
from secure_train.integrity.dcp_reader import VerifiedFileSystemReader
from secure_train.integrity.dcp_writer import SigningFileSystemWriter
from secure_train.integrity.sharded import sign_directory


def make_state(size_mb: int, seed: int = 0) -> dict[str, Any]:
    """Model + optimizer-like state of ``size_mb`` MB of float32 (tensors of 4 MB at most, as in a real model)."""
    model = common.random_weights(size_mb, 1_000_000, "layers.{}.weight", seed)
    return {"state_dict": model, "global_step": torch.tensor(1000)}


def _empty_like(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "state_dict": {k: torch.empty_like(v) for k, v in state["state_dict"].items()},
        "global_step": torch.tensor(0),
    }


def evict(path: Path) -> None:
    """Drop the checkpoint's pages from the page cache (they are clean: DCP fsyncs what it writes).

    What a checkpoint larger than memory meets: whatever reads it after the save reads the disk.
    """
    for file in sorted(path.rglob("*")):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def run_plain(state: dict[str, Any], path: Path, _key: Any, cold: bool = False) -> dict[str, float]:
    t0 = time.perf_counter()
    dcp.save(state, checkpoint_id=path)
    if cold:
        evict(path)
    t1 = time.perf_counter()
    if cold:  # a resume reads a checkpoint that has long left the cache
        evict(path)
    target = _empty_like(state)
    dcp.load(target, checkpoint_id=path)
    t2 = time.perf_counter()
    assert torch.equal(target["state_dict"]["layers.0.weight"], state["state_dict"]["layers.0.weight"])
    return {"save_s": t1 - t0, "load_s": t2 - t1, "sign_s": 0.0, "verify_s": 0.0}


def run_signed(
    state: dict[str, Any], path: Path, key: ec.EllipticCurvePrivateKey, cold: bool = False, hash_type: str = "blake3"
) -> dict[str, float]:
    t0 = time.perf_counter()
    dcp.save(state, checkpoint_id=path)
    if cold:
        evict(path)
    t_saved = time.perf_counter()
    sign_directory(path, key, provenance={"global_step": 1000}, hash_type=hash_type)
    t1 = time.perf_counter()
    if cold:  # a resume reads a checkpoint that has long left the cache
        evict(path)
    target = _empty_like(state)
    with VerifiedFileSystemReader(path, key.public_key()) as reader:
        t_verified = time.perf_counter()
        dcp.load(target, storage_reader=reader)
    t2 = time.perf_counter()
    assert torch.equal(target["state_dict"]["layers.0.weight"], state["state_dict"]["layers.0.weight"])
    return {"save_s": t1 - t0, "load_s": t2 - t1, "sign_s": t1 - t_saved, "verify_s": t_verified - t1}


def run_signed_async(
    state: dict[str, Any], path: Path, key: ec.EllipticCurvePrivateKey, cold: bool = False
) -> dict[str, float]:
    io_plugin = SignedCheckpointIO(private_key=key, async_save=True, sign_audit_head=False)
    t0 = time.perf_counter()
    dcp.save(state, checkpoint_id=path)
    if cold:
        evict(path)
    t_saved = time.perf_counter()
    io_plugin._submit(io_plugin.sign_directory, path, {"global_step": 1000})
    t1 = time.perf_counter()
    target = _empty_like(state)
    io_plugin.wait()  # a resume waits for the signature
    if cold:  # a resume reads a checkpoint that has long left the cache
        evict(path)
    t_signed = time.perf_counter()
    with VerifiedFileSystemReader(path, key.public_key()) as reader:
        t_verified = time.perf_counter()
        dcp.load(target, storage_reader=reader)
    t2 = time.perf_counter()
    io_plugin.teardown()
    assert torch.equal(target["state_dict"]["layers.0.weight"], state["state_dict"]["layers.0.weight"])
    return {"save_s": t1 - t0, "load_s": t2 - t1, "sign_s": t_signed - t_saved, "verify_s": t_verified - t_signed}


def run_signed_writer(
    state: dict[str, Any], path: Path, key: ec.EllipticCurvePrivateKey, cold: bool = False
) -> dict[str, float]:
    t0 = time.perf_counter()
    writer = SigningFileSystemWriter(path, key, provenance={"global_step": 1000})
    dcp.save(state, storage_writer=writer)  # hashed while written, signed at the end
    if cold:
        evict(path)
    t1 = time.perf_counter()
    if cold:  # a resume reads a checkpoint that has long left the cache
        evict(path)
    target = _empty_like(state)
    with VerifiedFileSystemReader(path, key.public_key()) as reader:
        t_verified = time.perf_counter()
        dcp.load(target, storage_reader=reader)
    t2 = time.perf_counter()
    assert torch.equal(target["state_dict"]["layers.0.weight"], state["state_dict"]["layers.0.weight"])
    return {"save_s": t1 - t0, "load_s": t2 - t1, "sign_s": 0.0, "verify_s": t_verified - t1}


def run_signed_sha256(
    state: dict[str, Any], path: Path, key: ec.EllipticCurvePrivateKey, cold: bool = False
) -> dict[str, float]:
    return run_signed(state, path, key, cold, "sha256")


VARIANTS = {
    "plain": run_plain,
    "signed": run_signed,
    "signed sha256": run_signed_sha256,
    "signed async": run_signed_async,
    "signed writer": run_signed_writer,
}


def hash_rates(buffer_mb: int = 128) -> dict[str, float]:
    """Single-thread GB/s of SHA-256 and BLAKE3 on in-memory data."""
    import blake3

    data = os.urandom(buffer_mb * 1_000_000)
    rates = {}
    for name, fn in (("sha256", lambda: hashlib.sha256(data)), ("blake3", lambda: blake3.blake3(data))):
        start = time.perf_counter()
        fn().digest()
        rates[name] = round(len(data) / (time.perf_counter() - start) / 1e9, 3)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=100, help="state size (MB of float32)")
    parser.add_argument("--repeats", type=int, default=5, help="round trips per variant (median reported)")
    parser.add_argument("--dir", default=None, help="where checkpoints are written (default: a temp dir under /tmp)")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="evict the checkpoint from the page cache after each save (a checkpoint larger than memory)",
    )
    parser.add_argument("--out-dir", default=str(common.RESULTS_DIR))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="torch.distributed is disabled")

    root = Path(tempfile.mkdtemp(prefix="sharded-signing-", dir=args.dir))  # default: $TMPDIR or /tmp
    key = ec.generate_private_key(ec.SECP256R1())
    state = make_state(args.size_mb)
    times: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    try:
        for name in names:  # warm-up: imports, allocator, page cache
            VARIANTS[name](state, root / f"warm-{name}", key, args.cold)
            shutil.rmtree(root / f"warm-{name}")
        for repeat in range(args.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                path = root / f"step={repeat}-{name}.ckpt"
                cpu0 = time.process_time()
                times[name].append(VARIANTS[name](state, path, key, args.cold))
                times[name][-1]["cpu_s"] = time.process_time() - cpu0
                shutil.rmtree(path)
                Path(str(path) + ".sig").unlink(missing_ok=True)
        rates = hash_rates()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def med(name: str, field: str) -> float:
        return statistics.median(t[field] for t in times[name])

    def total(t: dict[str, float]) -> float:
        return t["save_s"] + t["load_s"]

    plain_total = statistics.median(total(t) for t in times["plain"])
    plain_min = min(total(t) for t in times["plain"])
    rows = []
    for name in names:
        tot = statistics.median(total(t) for t in times[name])
        rows.append(
            {
                "variant": name,
                "save_s": med(name, "save_s"),
                "load_s": med(name, "load_s"),
                "sign_s": med(name, "sign_s"),
                "verify_s": med(name, "verify_s"),
                "round_trip_s": tot,
                "cpu_s": med(name, "cpu_s"),
                "cpu_ratio": statistics.median(
                    t["cpu_s"] / p["cpu_s"] for t, p in zip(times[name], times["plain"], strict=True)
                ),
                "ratio_paired": statistics.median(
                    total(t) / total(p) for t, p in zip(times[name], times["plain"], strict=True)
                ),
                "ratio_median": tot / plain_total,
                "ratio_min": min(total(t) for t in times[name]) / plain_min,
                "save_ratio": med(name, "save_s") / med("plain", "save_s"),
                "load_ratio": med(name, "load_s") / med("plain", "load_s"),
            }
        )
    meta = {
        "size_mb": args.size_mb,
        "page_cache": "evicted after each save (--cold)" if args.cold else "warm",
        "repeats": args.repeats,
        "files": "1 x .distcp + .metadata (single process, dcp defaults)",
        "hash_GBps_single_thread": rates,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "dir": str(args.dir or tempfile.gettempdir()),
        "goal": "round trip ratio signed/plain <= 1.10",
    }
    common.write_results("sharded_signing" + ("_cold" if args.cold else ""), rows, args.out_dir, meta=meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
