"""Drift of a classifier's output distribution: PSI, Kolmogorov–Smirnov and Jensen–Shannon.

:class:`DriftMonitor` compares the predicted labels and confidences (max class probability)
on new data against a reference sample:

* ``psi``: population stability index of the confidences (10 reference-quantile bins) and of
  the predicted labels; the larger of the two. Rule of thumb: < 0.1 stable, > 0.25 shifted;
  for small windows the bar rises to the PSI that sampling noise alone reaches with
  probability ``ks_alpha`` (``(1/n + 1/m) * chi2.ppf(1 - ks_alpha, bins - 1)``).
* ``ks``: two-sample Kolmogorov–Smirnov statistic of the confidences (``scipy.stats.ks_2samp``)
  and its p-value; the check fires when the p-value is below ``ks_alpha``.
* ``js``: Jensen–Shannon divergence (base 2, in [0, 1]) between the predicted-label
  distributions (``scipy.spatial.distance.jensenshannon`` squared).

An alert is raised when any of them crosses its threshold. As a Lightning callback it runs
on validation: the first validation epoch becomes the reference unless one is given, each
later epoch is compared, ``drift/psi``, ``drift/ks``, ``drift/ks_pvalue``, ``drift/js`` and
``drift/alert`` are logged and an alert writes a ``drift.alert`` audit event (optionally
stopping training). As a standalone check (``secure-train drift REFERENCE CURRENT``) it reads
inference logs.

Inference log format: JSONL, one prediction per line, with ``probs`` (a list of class
probabilities) or ``pred`` and ``confidence``; or CSV/TSV with ``pred,confidence`` columns.

Example:
    >>> import torch
    >>> ref = torch.tensor([[0.9, 0.1], [0.2, 0.8]] * 200)
    >>> monitor = DriftMonitor(reference=ref)
    >>> monitor.compare(ref).alert
    False
    >>> monitor.compare(torch.tensor([[0.6, 0.4]] * 400)).alert
    True
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2, ks_2samp
from typing_extensions import override

from secure_train.core.audit_log import get_audit_log
from secure_train.core.distributed import destroy_process_group_at_exit
from secure_train.core.errors import ConfigError, DataError
from secure_train.core.require import require_in_range, require_int, require_positive
from secure_train.core.safe_io import open_lines

__all__ = ["DriftMonitor", "DriftReport", "load_inference_log"]

_EPS = 1e-4


@dataclass(frozen=True)
class DriftReport:
    """One comparison of a current sample against the reference."""

    psi: float
    psi_label: float
    psi_confidence: float
    ks: float
    ks_pvalue: float
    js: float
    n_reference: int
    n_current: int
    label_reference: list[float]
    label_current: list[float]
    alert: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    ref = np.clip(ref, _EPS, None)
    cur = np.clip(cur, _EPS, None)
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _as_pred_conf(outputs: torch.Tensor | np.ndarray | tuple[Any, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(pred, confidence)`` arrays from class probabilities or from a ``(pred, conf)`` pair."""
    if isinstance(outputs, tuple):
        pred, conf = (np.asarray(x) for x in outputs)
        return pred.astype(np.int64), conf.astype(np.float64)
    probs = outputs.detach().float().cpu().numpy() if isinstance(outputs, torch.Tensor) else np.asarray(outputs)
    if probs.ndim != 2:
        raise DataError(f"expected class probabilities of shape (n, num_labels), got shape {probs.shape}")
    return probs.argmax(1).astype(np.int64), probs.max(1).astype(np.float64)


def load_inference_log(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read an inference log (JSONL with ``probs`` or ``pred``+``confidence``, or CSV/TSV)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: inference log not found")
    preds: list[int] = []
    confs: list[float] = []
    try:
        if p.suffix in (".csv", ".tsv"):
            with open_lines(p, what="inference log", error=DataError) as fh:  # bounded line length
                for i, row in enumerate(csv.DictReader(fh, delimiter="\t" if p.suffix == ".tsv" else ",")):
                    try:
                        preds.append(int(row["pred"]))
                        confs.append(float(row["confidence"]))
                    except (KeyError, TypeError, ValueError):
                        raise DataError(f"{p} row {i + 2}: needs integer 'pred' and float 'confidence'") from None
        else:
            with open_lines(p, what="inference log", error=DataError) as fh:  # bounded line length
                for i, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                        if "probs" in row:
                            probs = [float(x) for x in row["probs"]]
                            best = int(np.argmax(probs))
                            preds.append(best)
                            confs.append(probs[best])
                        else:
                            preds.append(int(row["pred"]))
                            confs.append(float(row["confidence"]))
                    except (KeyError, TypeError, ValueError):
                        raise DataError(f"{p} line {i}: needs 'probs' or 'pred' and 'confidence'") from None
    except UnicodeDecodeError:
        raise DataError(f"{p}: not a text inference log") from None
    if not preds:
        raise DataError(f"{p}: no predictions")
    return np.asarray(preds, dtype=np.int64), np.asarray(confs, dtype=np.float64)


class DriftMonitor(Callback):
    """Alert when the output distribution drifts from a reference (callback and standalone).

    Args:
        reference: class probabilities ``(n, num_labels)``, a ``(pred, confidence)`` pair, or
            an inference-log path. Default: the first validation epoch.
        psi_threshold: alert when PSI (labels or confidences) exceeds this.
        ks_alpha: alert when the KS p-value of the confidences is below this.
        js_threshold: alert when the label Jensen–Shannon divergence (bits) exceeds this.
        num_labels: label count for histograms (default: inferred).
        bins: confidence bins (reference quantiles).
        min_samples: fewer current samples than this are not judged.
        halt: stop training on an alert (same decision on every rank).

    Logged keys: ``drift/psi``, ``drift/ks``, ``drift/ks_pvalue``, ``drift/js``, ``drift/alert``.
    """

    def __init__(
        self,
        reference: torch.Tensor | np.ndarray | tuple[Any, Any] | str | os.PathLike[str] | None = None,
        *,
        psi_threshold: float = 0.25,
        ks_alpha: float = 1e-3,
        js_threshold: float = 0.05,
        num_labels: int | None = None,
        bins: int = 10,
        min_samples: int = 50,
        halt: bool = False,
    ) -> None:
        require_positive(self, "psi_threshold", psi_threshold)
        require_in_range(self, "ks_alpha", ks_alpha, "(0, 1)")
        require_in_range(self, "js_threshold", js_threshold, "(0, 1]")
        require_int(self, "num_labels", num_labels, minimum=1, optional=True)
        require_int(self, "bins", bins, minimum=2)
        require_int(self, "min_samples", min_samples, minimum=1)
        self.psi_threshold, self.ks_alpha, self.js_threshold = psi_threshold, ks_alpha, js_threshold
        self.num_labels, self.bins, self.min_samples, self.halt = num_labels, bins, min_samples, halt
        self._ref: tuple[np.ndarray, np.ndarray] | None = None
        if isinstance(reference, (str, os.PathLike)):
            self._ref = load_inference_log(reference)
        elif reference is not None:
            self._ref = _as_pred_conf(reference)
        self._probs: list[torch.Tensor] = []
        self.reports: list[DriftReport] = []

    @property
    def state_key(self) -> str:
        return self._generate_state_key(psi=self.psi_threshold, ks=self.ks_alpha, js=self.js_threshold)

    # -- statistics -----------------------------------------------------------------------
    def compare(self, current: torch.Tensor | np.ndarray | tuple[Any, Any]) -> DriftReport:
        """Compare ``current`` outputs with the reference; no side effects besides the return."""
        if self._ref is None:
            raise ConfigError("DriftMonitor has no reference: pass reference= or run a validation epoch first")
        ref_pred, ref_conf = self._ref
        cur_pred, cur_conf = _as_pred_conf(current)
        k = self.num_labels or int(max(ref_pred.max(initial=0), cur_pred.max(initial=0)) + 1)
        ref_lab = np.bincount(ref_pred, minlength=k).astype(np.float64)
        cur_lab = np.bincount(cur_pred, minlength=k).astype(np.float64)
        edges = np.unique(np.quantile(ref_conf, np.linspace(0, 1, self.bins + 1)[1:-1]))
        ref_hist = np.bincount(np.searchsorted(edges, ref_conf, side="right"), minlength=len(edges) + 1)
        cur_hist = np.bincount(np.searchsorted(edges, cur_conf, side="right"), minlength=len(edges) + 1)
        psi_label = _psi(ref_lab, cur_lab)
        psi_conf = _psi(ref_hist.astype(np.float64), cur_hist.astype(np.float64))
        ks = ks_2samp(ref_conf, cur_conf)
        js = float(jensenshannon(ref_lab / ref_lab.sum(), cur_lab / cur_lab.sum(), base=2) ** 2)
        psi = max(psi_label, psi_conf)
        # Sampling noise: for equal distributions PSI ~ (1/n + 1/m) * chi2(bins - 1), so small
        # windows get a higher bar (same false-alarm rate as the KS test).
        noise = (1 / len(ref_pred) + 1 / max(1, len(cur_pred))) * float(chi2.ppf(1 - self.ks_alpha, len(edges)))
        psi_bar = max(self.psi_threshold, noise)
        reasons = []
        if len(cur_pred) >= self.min_samples:
            if psi > psi_bar:
                reasons.append(f"psi {psi:.3f} > {psi_bar:.3f}")
            if float(ks.pvalue) < self.ks_alpha:
                reasons.append(f"ks p-value {float(ks.pvalue):.2e} < {self.ks_alpha}")
            if js > self.js_threshold:
                reasons.append(f"js {js:.3f} > {self.js_threshold}")
        return DriftReport(
            psi=round(psi, 6),
            psi_label=round(psi_label, 6),
            psi_confidence=round(psi_conf, 6),
            ks=round(float(ks.statistic), 6),
            ks_pvalue=float(ks.pvalue),
            js=round(js, 6),
            n_reference=len(ref_pred),
            n_current=len(cur_pred),
            label_reference=(ref_lab / ref_lab.sum()).round(4).tolist(),
            label_current=(cur_lab / cur_lab.sum()).round(4).tolist(),
            alert=bool(reasons),
            reasons=reasons,
        )

    def check_windows(
        self, current: tuple[np.ndarray, np.ndarray], window: int, *, drop_last: bool = True
    ) -> list[DriftReport]:
        """Compare consecutive windows of ``window`` predictions with the reference."""
        require_int(self, "window", window, minimum=1)
        pred, conf = current
        stop = len(pred) - (len(pred) % window if drop_last else 0)
        return [self.compare((pred[i : i + window], conf[i : i + window])) for i in range(0, max(stop, 1), window)]

    def set_reference(self, reference: torch.Tensor | np.ndarray | tuple[Any, Any]) -> None:
        self._ref = _as_pred_conf(reference)

    # -- callback -------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        destroy_process_group_at_exit()  # the validation gather can be the last collective

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._probs = []

    @override
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        # One extra forward pass on validation batches: validation_step returns only the loss.
        with torch.no_grad():
            self._probs.append(pl_module(batch).float().softmax(-1).detach())

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self._probs:
            return
        local = torch.cat(self._probs)
        self._probs = []
        probs = local
        if trainer.world_size > 1:
            gathered = pl_module.all_gather(local)
            assert isinstance(gathered, torch.Tensor)
            probs = gathered.reshape(-1, local.shape[-1])
        if self._ref is None:
            self.set_reference(probs)
            get_audit_log(trainer).record(
                "drift.reference", source="DriftMonitor", epoch=trainer.current_epoch, n=int(probs.shape[0])
            )
            return
        report = self.compare(probs)
        self.reports.append(report)
        metrics = {
            "drift/psi": report.psi,
            "drift/ks": report.ks,
            "drift/ks_pvalue": report.ks_pvalue,
            "drift/js": report.js,
            "drift/alert": float(report.alert),
        }
        pl_module.log_dict(metrics, rank_zero_only=True)
        if report.alert:
            rank_zero_warn(f"DriftMonitor: output distribution drifted: {'; '.join(report.reasons)}")
            get_audit_log(trainer).record(
                "drift.alert", source="DriftMonitor", epoch=trainer.current_epoch, **report.to_dict()
            )
            if self.halt:
                trainer.should_stop = True

    @override
    def state_dict(self) -> dict[str, Any]:
        ref = None if self._ref is None else [self._ref[0].tolist(), self._ref[1].tolist()]
        return {"reference": ref, "reports": [r.to_dict() for r in self.reports]}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ref = state_dict.get("reference")
        if ref is not None:
            self._ref = (np.asarray(ref[0], dtype=np.int64), np.asarray(ref[1], dtype=np.float64))
        self.reports = [DriftReport(**r) for r in state_dict.get("reports", [])]


def summarize(reports: Sequence[DriftReport]) -> dict[str, Any]:
    """Counts and maxima over several windows."""
    return {
        "windows": len(reports),
        "alerts": sum(r.alert for r in reports),
        "max_psi": max((r.psi for r in reports), default=0.0),
        "max_js": max((r.js for r in reports), default=0.0),
        "min_ks_pvalue": min((r.ks_pvalue for r in reports), default=1.0),
    }
