"""Peak memory of a TextClassificationDataModule setup on 1 M vs 10 M generated records (Arrow backend).

Generates the records as Parquet under ``--workdir`` (default ``/tmp/secure_train_scale``,
never the repository), then, in a fresh process per size: builds the DataModule on the Parquet
file (``backend="arrow"``: memory-mapped, lazy tokenization, hash split), runs ``setup("fit")``
and draws ``--batches`` training batches. Each process reports its peak RSS (``VmHWM``) and its
peak *anonymous* RSS (``RssAnon``, sampled every 20 ms: the memory the process itself owns;
file-backed pages of the memory-mapped Arrow files are page cache the kernel can drop), both
also as the growth over the process after its imports. ``--memory-baseline`` adds the
list-of-records path (``backend="memory"``, records and token ids in Python objects) at the
smallest size, for contrast.

Usage:
    nice -n 10 python -m benchmarks.scale_memory --sizes 1000000 10000000
Writes a table to stdout and JSON to benchmarks/results/scale_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


def generate(path: Path, n: int, seed: int = 0) -> None:
    """``n`` labeled sentences as Parquet, written in chunks (flat memory), texts unique by a row tag."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from secure_train.data.synthetic import synthetic_classification

    pool = synthetic_classification(20_000, seed=seed)
    texts = pa.array([r.text for r in pool])
    labels = np.array([r.label for r in pool], dtype=np.int64)
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    schema = pa.schema([("sentence", pa.string()), ("label", pa.int64())])
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, n, 1_000_000):
            k = min(1_000_000, n - start)
            pick = rng.integers(0, len(pool), k)
            tags = pc.cast(pa.array(np.arange(start, start + k)), pa.string())
            sentence = pc.binary_join_element_wise(texts.take(pa.array(pick)), pc.utf8_upper(tags), " row")
            writer.write_table(pa.table({"sentence": sentence, "label": labels[pick]}, schema=schema))
    os.replace(tmp, path)


def measure(path: str, backend: str, batches: int, cache: str) -> dict[str, float]:
    """Run in a child process: setup + ``batches`` training batches; peak memory in bytes."""
    peak_anon = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_anon
        while not stop.is_set():
            peak_anon = max(peak_anon, _status()["RssAnon"])
            time.sleep(0.02)

    from secure_train.data import TextClassificationDataModule

    base = _status()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    dm = TextClassificationDataModule(
        path,
        backend=backend,
        batch_size=32,
        vocab_size=2048,
        max_length=64,
        tokenizer_sample=50_000,
        cache_dir=cache,
    )
    dm.setup("fit")
    setup_s = time.perf_counter() - start
    loader = dm.train_dataloader()
    n_seen = 0
    for i, batch in enumerate(loader):
        n_seen += len(batch["sample_id"])
        if i + 1 >= batches:
            break
    stop.set()
    thread.join()
    end = _status()
    return {
        "n_train": len(dm.load_records()["train"]),
        "n_val": len(dm.load_records()["val"]),
        "setup_s": setup_s,
        "batches_s": time.perf_counter() - start - setup_s,
        "examples_drawn": n_seen,
        "base_rss": base["VmRSS"],
        "base_anon": base["RssAnon"],
        "peak_rss": end["VmHWM"],
        "peak_anon": max(peak_anon, end["RssAnon"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--workdir", default="/tmp/secure_train_scale")  # noqa: S108 - generated data, not secrets
    parser.add_argument("--memory-baseline", action="store_true", help="also the in-memory list path, smallest size")
    parser.add_argument("--child", nargs=3, metavar=("PATH", "BACKEND", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.batches, args.child[2])))
        return
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    runs = [(n, "arrow") for n in args.sizes]
    if args.memory_baseline:
        runs.insert(0, (min(args.sizes), "memory"))
    rows = []
    for n, backend in runs:
        data = work / f"records_{n}.parquet"
        if not data.exists():
            t = time.perf_counter()
            generate(data, n)
            print(f"generated {n:,} records in {time.perf_counter() - t:.0f} s ({data.stat().st_size / 2**20:.0f} MiB)")
        cache = work / f"cache_{n}_{backend}"
        shutil.rmtree(cache, ignore_errors=True)  # cold: datasets converts the file afresh
        path = str(data)
        if backend == "memory":  # the list path reads text formats: the same records as JSONL
            path = str(work / f"records_{n}.jsonl")
            if not Path(path).exists():
                import pyarrow.parquet as pq

                with open(path, "w") as fh:
                    for b in pq.ParquetFile(data).iter_batches(100_000):
                        for s, lab in zip(b.column(0).to_pylist(), b.column(1).to_pylist(), strict=True):
                            fh.write(json.dumps({"sentence": s, "label": lab}) + "\n")
        cmd = [sys.executable, __file__, "--batches", str(args.batches), "--child", path, backend, str(cache)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        if out.returncode != 0:
            raise SystemExit(f"{n} {backend} failed:\n{out.stderr[-3000:]}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"records": n, "backend": backend, **res})
        shutil.rmtree(cache, ignore_errors=True)
    mib = 2**20
    print(f"\n{'records':>11} {'backend':>7} {'setup s':>8} {'peak RSS':>9} {'+RSS':>7} {'peak anon':>10} {'+anon':>7}")
    for r in rows:
        print(
            f"{r['records']:>11,} {r['backend']:>7} {r['setup_s']:>8.0f} {r['peak_rss'] / mib:>8.0f}M "
            f"{(r['peak_rss'] - r['base_rss']) / mib:>6.0f}M {r['peak_anon'] / mib:>9.0f}M "
            f"{(r['peak_anon'] - r['base_anon']) / mib:>6.0f}M"
        )
    arrow = [r for r in rows if r["backend"] == "arrow"]
    summary = {}
    if len(arrow) >= 2:
        lo, hi = arrow[0], arrow[-1]
        summary = {
            "records_ratio": hi["records"] / lo["records"],
            "peak_rss_ratio": hi["peak_rss"] / lo["peak_rss"],
            "peak_anon_ratio": hi["peak_anon"] / lo["peak_anon"],
        }
        print(
            f"\n{hi['records'] / lo['records']:.0f}x the records: peak RSS x{summary['peak_rss_ratio']:.2f}, "
            f"peak anonymous RSS x{summary['peak_anon_ratio']:.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale_memory.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    print(f"wrote {RESULTS / 'scale_memory.json'}")


if __name__ == "__main__":
    main()
