"""Logged metrics of a run (Lightning's ``CSVLogger`` ``metrics.csv``), read fast and downsampled.

Only the columns a report plots are parsed, by Arrow's multi-threaded CSV reader (a run with
100k logged steps reads in a fraction of a second). :meth:`MetricLog.downsample` keeps each
bucket's minimum and maximum, so a one-step spike survives downsampling to a few hundred points.

Example:
    >>> log = MetricLog({"train/loss": ([0, 1, 2, 3], [1.0, 0.9, 9.0, 0.8])})
    >>> log.downsample("train/loss", buckets=2)
    [(0.0, 1.0), (1.0, 0.9), (2.0, 9.0), (3.0, 0.8)]
    >>> log.summary("train/loss")["max"]
    9.0
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from secure_train.core.errors import DataError

__all__ = ["MetricLog"]

DEFAULT_PATTERN = re.compile(
    r"^(train/loss.*|val/.*|grad_norm/global.*|loss_spike/.*|activation/.*/(mean|std|max_abs)|dp/.*|drift/.*|anomaly/.*)$"
)


class MetricLog:
    """Series of ``(steps, values)`` per metric name (NumPy arrays; rows where the metric is empty dropped).

    Args:
        series: ``{name: (steps, values)}``; steps ascending as logged.
    """

    def __init__(self, series: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None) -> None:
        self.series: dict[str, tuple[np.ndarray, np.ndarray]] = {
            k: (np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
            for k, (x, y) in (series or {}).items()
        }
        for name, (steps, values) in self.series.items():
            if steps.shape != values.shape or steps.ndim != 1:
                shapes = f"{steps.shape} steps but {values.shape} values"
                raise DataError(f"{type(self).__name__}: series {name!r} has {shapes}")

    @classmethod
    def read_csv(cls, path: str | os.PathLike[str], pattern: re.Pattern[str] = DEFAULT_PATTERN) -> MetricLog:
        """Read the columns of ``metrics.csv`` whose names match ``pattern`` (empty log if no file)."""
        import pyarrow as pa
        from pyarrow import csv

        p = Path(path)
        if not p.is_file():
            return cls()
        with p.open(encoding="utf-8") as fh:
            header = fh.readline().rstrip("\r\n").split(",")
        wanted = [c for c in header if pattern.match(c)]
        if "step" not in header or not wanted:
            return cls()
        try:
            table = csv.read_csv(
                p,
                convert_options=csv.ConvertOptions(
                    include_columns=["step", *wanted], column_types={c: pa.float64() for c in ["step", *wanted]}
                ),
            )
        except (pa.ArrowInvalid, OSError):
            return cls()
        steps = table.column("step").to_numpy()
        log = cls()
        for name in wanted:
            values = table.column(name).to_numpy()
            keep = ~np.isnan(values) & ~np.isnan(steps)  # empty cells (and NaN values: not plottable)
            if keep.any():
                log.series[name] = (steps[keep], values[keep])
        return log

    def keys(self) -> list[str]:
        return sorted(self.series)

    def has(self, key: str) -> bool:
        return key in self.series

    def first(self, candidates: Iterable[str]) -> str | None:
        """The first of ``candidates`` that was logged."""
        return next((c for c in candidates if c in self.series), None)

    def matching(self, regex: str) -> list[str]:
        rx = re.compile(regex)
        return [k for k in self.keys() if rx.search(k)]

    def values(self, key: str) -> list[float]:
        return self.series[key][1].tolist() if key in self.series else []

    def lookup(self, key: str) -> dict[float, float]:
        """``{step: value}`` of a series."""
        xs, ys = self.series.get(key, (np.empty(0), np.empty(0)))
        return dict(zip(xs.tolist(), ys.tolist(), strict=True))

    def downsample(self, key: str, buckets: int = 600) -> list[tuple[float, float]]:
        """At most ``2 * buckets`` points: each bucket's min and max (in step order); non-finite values dropped."""
        if key not in self.series:
            return []
        xs, ys = self.series[key]
        finite = np.isfinite(ys)
        xs, ys = xs[finite], ys[finite]
        n = len(ys)
        if n <= 2 * buckets:
            return list(zip(xs.tolist(), ys.tolist(), strict=True))
        edges = (np.arange(buckets + 1) * n) // buckets
        idx: list[int] = []
        for a, b in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
            if b > a:
                lo, hi = a + int(np.argmin(ys[a:b])), a + int(np.argmax(ys[a:b]))
                idx += [lo, hi] if lo < hi else [hi, lo] if hi < lo else [lo]
        sel = np.asarray(idx)
        return list(zip(xs[sel].tolist(), ys[sel].tolist(), strict=True))

    def summary(self, key: str) -> dict[str, Any]:
        """``n``, ``first``, ``last``, ``min``, ``max``, ``last_step`` of a series (finite values)."""
        if key not in self.series:
            return {"n": 0}
        xs, ys = self.series[key]
        finite = np.isfinite(ys)
        if not finite.any():
            return {"n": len(ys)}
        f = ys[finite]
        return {"n": len(ys), "first": float(f[0]), "last": float(f[-1]), "min": float(f.min()),
                "max": float(f.max()), "last_step": float(xs[-1])}  # fmt: skip
