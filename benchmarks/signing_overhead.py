"""Checkpoint signing overhead and verification throughput.

Part 1 -- time the training loop is blocked by one checkpoint save, for state dicts of
about 100 MB and 1 GB, measured side by side in one run (variants interleaved, their order
rotated every repeat; median and minimum of ``--repeats``, the minimum being the least
disturbed by other load):

- ``plain``: Lightning's default ``TorchCheckpointIO`` (serialize to memory, write; no fsync);
- ``signed``: ``SignedCheckpointIO`` defaults (hash while writing, in parallel threads,
  sign, rename the pair into place; no fsync, like ``plain``);
- ``signed fsync``: ``fsync=True``: both files and the directory flushed to disk before the
  pair becomes visible;
- ``signed async``: ``async_save=True``: serialize on the training thread; write, hash, sign
  and rename on a background thread. The blocked time is the ``save_checkpoint`` call;
  ``in_place_s`` is the time until the signed pair is in place.

Part 2 -- verification throughput (``verify_file``: memory-mapped, shards hashed in
parallel) on the 1 GB signed checkpoint (page cache warm), against the machine's combined
SHA-256 rate (one in-memory hashing thread per core, all at once) measured in the same run.

Example::

    flock /tmp/secure-train-heavy.lock python -m benchmarks.signing_overhead --sizes-mb 100 1000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch
from cryptography.hazmat.primitives.asymmetric import ec
from lightning.pytorch.plugins.io import TorchCheckpointIO

from benchmarks import common
from secure_train.integrity import SignedCheckpointIO, load_checkpoint, verify_file


def make_checkpoint(size_mb: int, seed: int = 0) -> dict[str, Any]:
    """A Lightning-like checkpoint whose state dict holds ``size_mb`` MB of float32 (64 MB tensors at most)."""
    state = common.random_weights(size_mb, 16_000_000, "layer{}.weight", seed)
    return {"state_dict": state, "global_step": 1000, "epoch": 1, "optimizer_states": [], "callbacks": {}}


def sha256_rates(buffer_mb: int = 256) -> tuple[float, float, int]:
    """(single-thread GB/s, all-cores GB/s, cores) for SHA-256 on in-memory data."""
    cores = os.cpu_count() or 1
    data = os.urandom(buffer_mb * 1_000_000)
    start = time.perf_counter()
    hashlib.sha256(data).digest()
    single = len(data) / (time.perf_counter() - start) / 1e9
    threads = [threading.Thread(target=lambda: hashlib.sha256(data).digest()) for _ in range(cores)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    combined = cores * len(data) / (time.perf_counter() - start) / 1e9
    return single, combined, cores


def _filesystem(path: Path) -> str:
    best = ("?", "")
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                _, mount, fstype, *_ = line.split()
                if str(path.resolve()).startswith(mount) and len(mount) > len(best[1]):
                    best = (fstype, mount)
    except OSError:
        pass
    return f"{best[0]} ({best[1]})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000], help="state dict sizes (MB)")
    parser.add_argument("--repeats", type=int, default=3, help="saves per variant and size (median reported)")
    parser.add_argument(
        "--dir", default=None, help="where checkpoints are written (default: a temp dir; /dev/shm isolates CPU cost)"
    )
    parser.add_argument("--out-dir", default=str(common.RESULTS_DIR))
    args = parser.parse_args(argv)

    key = ec.generate_private_key(ec.SECP256R1())
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="signing-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    variants: dict[str, Any] = {
        "plain": TorchCheckpointIO(),
        "signed": SignedCheckpointIO(private_key=key, sign_audit_head=False),
        "signed fsync": SignedCheckpointIO(private_key=key, fsync=True, sign_audit_head=False),
        "signed async": SignedCheckpointIO(private_key=key, async_save=True, sign_audit_head=False),
    }
    rows: list[dict[str, Any]] = []
    largest: Path | None = None
    for size_mb in args.sizes_mb:
        ckpt = make_checkpoint(size_mb)
        blocked: dict[str, list[float]] = {name: [] for name in variants}
        in_place: dict[str, list[float]] = {name: [] for name in variants}
        file_bytes = 0
        names = list(variants)
        for rep in range(args.repeats):
            # interleaved, and the order rotated each repeat: a save that follows another 1 GB write is slowed
            # by the kernel's write-back of the previous one, so no variant may always come second
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                plugin = variants[name]
                path = workdir / f"{size_mb}mb.ckpt"  # one file per size, overwritten like last.ckpt
                start = time.perf_counter()
                plugin.save_checkpoint(ckpt, path)
                blocked[name].append(time.perf_counter() - start)
                if isinstance(plugin, SignedCheckpointIO):
                    plugin.wait()
                in_place[name].append(time.perf_counter() - start)
                file_bytes = path.stat().st_size
                if isinstance(plugin, SignedCheckpointIO):
                    largest = path  # the last variant is signed: this file ends up with a valid sidecar
        base, base_min = statistics.median(blocked["plain"]), min(blocked["plain"])
        for name in variants:
            med = statistics.median(blocked[name])
            rows.append(
                {
                    "state_dict": f"{size_mb} MB",
                    "file_MB": round(file_bytes / 1e6, 1),
                    "variant": name,
                    "blocked_s": round(med, 3),
                    "vs_plain": round(med / base, 3),
                    "min_s": round(min(blocked[name]), 3),
                    "min_vs_plain": round(min(blocked[name]) / base_min, 3),
                    "in_place_s": round(statistics.median(in_place[name]), 3),
                    "runs_s": " ".join(f"{t:.2f}" for t in blocked[name]),
                }
            )
        del ckpt
        print(f"[{size_mb} MB] done", file=sys.stderr)

    single, combined, cores = sha256_rates()
    assert largest is not None
    size = largest.stat().st_size
    verify_file(largest, key.public_key())  # warm the page cache
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        verify_file(largest, key.public_key())
        times.append(time.perf_counter() - start)
    verify_gbps = size / statistics.median(times) / 1e9
    start = time.perf_counter()
    load_checkpoint(largest, key.public_key())
    verified_load = time.perf_counter() - start
    start = time.perf_counter()
    torch.load(largest, map_location="cpu", weights_only=True)
    plain_load = time.perf_counter() - start
    verify_rows = [
        {
            "file_MB": round(size / 1e6, 1),
            "verify_GB_s": round(verify_gbps, 3),
            "sha256_1core_GB_s": round(single, 3),
            f"sha256_{cores}cores_GB_s": round(combined, 3),
            "verify_vs_cores": round(verify_gbps / combined, 3),
            "verified_load_s": round(verified_load, 3),
            "plain_load_s": round(plain_load, 3),
        }
    ]
    meta = {
        "machine": f"{platform.machine()}, {cores} cores (shared), Python {platform.python_version()}",
        "dir": str(workdir),
        "filesystem": _filesystem(workdir),
        "repeats": args.repeats,
        "shard_size": variants["signed"].shard_size,
    }
    print("\n## Blocked time per checkpoint save (median)\n")
    common.write_results("signing_overhead", rows, args.out_dir, meta=meta)
    print("\n## Verification throughput (page cache warm)\n")
    common.write_results("signing_verify", verify_rows, args.out_dir, meta=meta)
    for plugin in variants.values():
        plugin.teardown()
    for p in workdir.glob("*mb.ckpt*"):
        p.unlink()
    if args.dir is None:
        workdir.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
