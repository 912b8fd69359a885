"""Logged metrics of a run (Lightning's ``CSVLogger`` ``metrics.csv``), read fast and downsampled.

Only the columns a report plots are parsed (a run with 100k logged steps reads in well under
a second). :meth:`MetricLog.downsample` keeps each bucket's minimum and maximum, so a one-step
spike survives downsampling to a few hundred points.

Example:
    >>> log = MetricLog({"train/loss": ([0, 1, 2, 3], [1.0, 0.9, 9.0, 0.8])})
    >>> log.downsample("train/loss", buckets=2)
    [(0.0, 1.0), (1.0, 0.9), (2.0, 9.0), (3.0, 0.8)]
    >>> log.summary("train/loss")["max"]
    9.0
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["MetricLog"]

DEFAULT_PATTERN = re.compile(
    r"^(train/loss.*|val/.*|grad_norm/global.*|loss_spike/.*|activation/.*/(mean|std|max_abs)|dp/.*|drift/.*|anomaly/.*)$"
)


class MetricLog:
    """Series of ``(steps, values)`` per metric name.

    Args:
        series: ``{name: (steps, values)}``; steps ascending as logged.
    """

    def __init__(self, series: dict[str, tuple[list[float], list[float]]] | None = None) -> None:
        self.series = series or {}

    @classmethod
    def read_csv(cls, path: str | os.PathLike[str], pattern: re.Pattern[str] = DEFAULT_PATTERN) -> MetricLog:
        """Read the columns of ``metrics.csv`` whose names match ``pattern`` (empty log if no file)."""
        p = Path(path)
        if not p.is_file():
            return cls()
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header or "step" not in header:
                return cls()
            step_col = header.index("step")
            wanted = [(i, name) for i, name in enumerate(header) if pattern.match(name)]
            series: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for _, name in wanted}
            for row in reader:
                if len(row) <= step_col or not row[step_col]:
                    continue
                step = float(row[step_col])
                for i, name in wanted:
                    if i < len(row) and row[i]:
                        try:
                            value = float(row[i])
                        except ValueError:
                            continue
                        xs, ys = series[name]
                        xs.append(step)
                        ys.append(value)
        return cls({k: v for k, v in series.items() if v[0]})

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

    def downsample(self, key: str, buckets: int = 600) -> list[tuple[float, float]]:
        """At most ``2 * buckets`` points: each bucket's min and max (in step order); non-finite values dropped."""
        xs, ys = self.series.get(key, ([], []))
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
        n = len(points)
        if n <= 2 * buckets:
            return [(float(x), float(y)) for x, y in points]
        out: list[tuple[float, float]] = []
        size = n / buckets
        for b in range(buckets):
            chunk = points[int(b * size) : int((b + 1) * size)]
            if not chunk:
                continue
            lo = min(range(len(chunk)), key=lambda i: chunk[i][1])
            hi = max(range(len(chunk)), key=lambda i: chunk[i][1])
            for i in sorted({lo, hi}):
                out.append((float(chunk[i][0]), float(chunk[i][1])))
        return out

    def summary(self, key: str) -> dict[str, Any]:
        """``n``, ``first``, ``last``, ``min``, ``max`` of a series (finite values)."""
        xs, ys = self.series.get(key, ([], []))
        finite = [y for y in ys if math.isfinite(y)]
        if not finite:
            return {"n": len(ys)}
        return {
            "n": len(ys),
            "first": finite[0],
            "last": finite[-1],
            "min": min(finite),
            "max": max(finite),
            "last_step": xs[-1],
        }
