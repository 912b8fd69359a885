"""The security report of one run: integrity verdict, controls present and absent, framework
mapping with evidence links, anomalies, checkpoints, and the plots.

Example:
    >>> import tempfile
    >>> from secure_train.core.audit_log import AuditLog
    >>> d = tempfile.mkdtemp()
    >>> _ = AuditLog(f"{d}/audit.jsonl").record("run.start", source="docs")
    >>> report = SecurityReport.from_run(d)
    >>> doc = report.to_dict()
    >>> doc["integrity"]["verdict"], doc["controls"][0]["id"], doc["controls"][0]["status"]
    ('unverified', 'data_provenance', 'absent')
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from secure_train.core.keys import PublicKeyLike
from secure_train.response.report.catalog import ControlCatalog
from secure_train.response.report.evidence import RunEvidence
from secure_train.response.report.svg import PALETTE, SvgChart

__all__ = ["SecurityReport"]

SCHEMA = "secure-train.report/1"
ACTION_COLORS = {"warn": "#e8590c", "skip": "#9c36b5", "halt": "#c92a2a", "rollback": "#0b7285"}
MONITORS = ("LossSpikeMonitor", "GradNormMonitor", "ActivationMonitor", "SampleLossMonitor")
MAX_BUCKETS = 500


def _callbacks(config: Any) -> list[dict[str, Any]]:
    """``{class_name, init_args}`` of the trainer callbacks in a LightningCLI config."""
    if not isinstance(config, dict):
        return []
    trainer = config.get("trainer") or {}
    cbs = trainer.get("callbacks") if isinstance(trainer, dict) else None
    out = []
    for cb in cbs if isinstance(cbs, list) else []:
        if isinstance(cb, dict) and "class_path" in cb:
            out.append({"class": str(cb["class_path"]).rsplit(".", 1)[-1], "init_args": cb.get("init_args") or {}})
    return out


def _short(digest: str | None, n: int = 12) -> str:
    return (digest or "")[:n]


class SecurityReport:
    """Build the report of a run from its :class:`~secure_train.response.report.evidence.RunEvidence`.

    Args:
        evidence: the run's verified evidence.
        catalog: the control catalogue (default: the one shipped).
    """

    def __init__(self, evidence: RunEvidence, catalog: ControlCatalog | None = None) -> None:
        self.evidence = evidence
        self.catalog = catalog or ControlCatalog.load()
        self.name = evidence.run_dir.resolve().name
        parent = evidence.run_dir.resolve().parent.name
        if self.name.startswith("version_") and parent:
            self.name = f"{parent}/{self.name}"
        self._dict: dict[str, Any] | None = None

    @classmethod
    def from_run(
        cls,
        run_dir: str | os.PathLike[str],
        *,
        public_key: PublicKeyLike | None = None,
        search_dirs: Sequence[str | os.PathLike[str]] = (),
        catalog: ControlCatalog | None = None,
        **evidence_options: Any,
    ) -> SecurityReport:
        """Read and verify ``run_dir`` and build its report (``evidence_options`` go to :class:`RunEvidence`)."""
        return cls(RunEvidence(run_dir, public_key=public_key, search_dirs=search_dirs, **evidence_options), catalog)

    # -- integrity ------------------------------------------------------------------------------
    def integrity(self) -> dict[str, Any]:
        ev = self.evidence
        problems: list[str] = []
        unchecked: list[str] = []
        chain = ev.chain
        log = {
            "path": ev.rel(ev.audit_path) if ev.audit_path else None,
            "sha256": (ev.file_entry(ev.audit_path) or {}).get("sha256") if ev.audit_path else None,
            "ok": chain.ok,
            "events": len(ev.events),
            "verified_events": chain.events,
            "error": chain.error,
            "bad_seq": chain.bad_seq,
        }
        if ev.audit_path is None:
            problems.append("no audit log (audit.jsonl) in the run directory")
        elif not chain.ok:
            problems.append(f"audit log does not verify: {chain.error}")
        if ev.head is not None:
            head = {
                "checked": True,
                "ok": ev.head.ok,
                "signed_events": ev.head.signed_events,
                "unsigned_tail": ev.head.unsigned_tail,
                "error": ev.head.error,
            }
            if not ev.head.ok and chain.ok:
                problems.append(f"signed audit head: {ev.head.error}")
        else:
            reason = "no --public-key given" if ev.public_key is None else "no audit log"
            head = {"checked": False, "reason": reason, "present": ev.head_file is not None}
            if ev.audit_path is not None:
                unchecked.append("signed audit head (truncation) not checked: " + reason)
        for ck in ev.checkpoints:
            if ck.signature == "failed":
                problems.append(f"checkpoint {ck.path}: signature FAILED ({ck.errors.get('signature')})")
            elif ck.signature == "not checked":
                unchecked.append(f"checkpoint {ck.path}: signature not checked (no --public-key)")
            if ck.trail == "broken":
                problems.append(f"checkpoint {ck.path}: audit trail up to it broken ({ck.errors.get('trail')})")
            if ck.gate == "invalid":
                problems.append(f"checkpoint {ck.path}: gate attestation does not verify ({ck.errors.get('gate')})")
        verdict = "TAMPERED" if problems else ("unverified" if unchecked or ev.public_key is None else "verified")
        return {
            "verdict": verdict,
            "problems": problems,
            "unchecked": unchecked,
            "public_key_given": ev.public_key is not None,
            "audit_log": log,
            "signed_head": head,
            "checkpoints": [c.to_dict() for c in ev.checkpoints],
        }

    # -- controls ---------------------------------------------------------------------------------
    def _refs(self, events: list[dict[str, Any]], limit: int = 40) -> list[dict[str, Any]]:
        return [
            {"seq": e.get("seq"), "type": e.get("type"), "verified": self.evidence.is_verified(e)}
            for e in events[:limit]
        ]

    def _files(self, predicate: Any) -> list[dict[str, Any]]:
        return [f for f in self.evidence.files if predicate(f["path"])]

    def _custody(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """``(event, custody entry)`` for every chain-of-custody entry in ``data.provenance`` events."""
        out = []
        for e in self.evidence.events_of("data.provenance"):
            for entry in e.get("payload", {}).get("data_custody") or []:
                if isinstance(entry, dict):
                    out.append((e, entry))
        return out

    def controls(self) -> list[dict[str, Any]]:
        ev = self.evidence
        found: dict[str, dict[str, Any]] = {}

        def put(
            cid: str,
            status: str,
            detail: str,
            events: list[dict[str, Any]] | None = None,
            files: list[dict[str, Any]] | None = None,
            **extra: Any,
        ) -> None:
            found[cid] = {
                "status": status,
                "detail": detail,
                "evidence": self._refs(events or []),
                "files": files or [],
                **extra,
            }

        # data provenance
        prov = [e for e in ev.events_of("data.provenance") if e.get("payload", {}).get("data_manifest")]
        if prov:
            m = prov[-1]["payload"]["data_manifest"]
            manifest = m.get("manifest")
            files = self._files(lambda p: p.endswith("manifest.json"))
            put(
                "data_provenance",
                "active",
                f"manifest {_short(m.get('manifest_digest'))}… verified at load: {len(m.get('files') or {})} file(s), "
                f"source {m.get('source')!r}, licence {m.get('license')!r}, signed: {m.get('signed')}"
                + (f"; {manifest}" if manifest else ""),
                prov,
                files,
            )
        else:
            put("data_provenance", "absent", "no verified data manifest (set data.manifest)")
        # scanners and poison sanitizer (chain of custody), scan reports
        custody = self._custody()
        scans = [(e, c) for e, c in custody if "scanners" in (c.get("params") or {}) or c.get("name") == "scan"]
        poison = [(e, c) for e, c in custody if "methods" in (c.get("params") or {}) or "poison" in str(c.get("name"))]
        scan_files = [ev.file_entry(p) for p, _ in ev.scan_reports]
        family = self.scan_families()
        if scans or ev.scan_reports:
            actions: Counter[str] = Counter()
            for _, c in scans:
                for action, ids in (c.get("affected") or {}).items():
                    actions[action] += len(ids)
            violations = [v for _, doc in ev.scan_reports for v in doc.get("policy_violations") or []]
            detail = (
                f"{sum(family.values())} finding(s) in {len(family)} famil{'y' if len(family) == 1 else 'ies'}"
                if family
                else "no findings"
            )
            if actions:
                detail += "; actions: " + ", ".join(f"{k} {v}" for k, v in sorted(actions.items()))
            if violations:
                detail += f"; POLICY VIOLATIONS: {', '.join(violations)}"
            put(
                "data_scan",
                "alert" if violations else "active",
                detail,
                [e for e, _ in scans],
                [f for f in scan_files if f],
                families=dict(family),
            )
        else:
            put("data_scan", "absent", "no content scanner ran on the training data and no scan report was found")
        if poison:
            dropped = sum(len((c.get("affected") or {}).get("dropped", [])) for _, c in poison)
            n_in = poison[-1][1].get("n_in")
            put("poison_sanitizer", "active", f"{dropped} sample(s) dropped of {n_in}", [e for e, _ in poison])
        else:
            put("poison_sanitizer", "absent", "no poisoned-sample sanitizer in the data transforms")
        # adversarial augmentation
        adv = ev.events_of("data.adversarial_augmentation")
        if adv:
            counts = adv[-1].get("payload", {}).get("attack_counts", {}).get("train", {})
            put(
                "adversarial_augmentation",
                "active",
                f"{sum(counts.values())} labeled attack example(s) in training, families: "
                + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"),
                adv,
            )
        else:
            put("adversarial_augmentation", "absent", "no labeled attack examples mixed into training")
        # monitors
        configured = [c for c in _callbacks(ev.config) if c["class"] in MONITORS]
        anomalies = ev.events_of("monitor.anomaly", "monitor.halt", "monitor.suspects")
        seen = {str(e.get("source")) for e in anomalies}
        names = [f"{c['class']} ({c['init_args'].get('action', 'warn')})" for c in configured]
        names += [s for s in sorted(seen) if s in MONITORS and not any(s == c["class"] for c in configured)]
        if not names:
            names = [
                f"{m} (from logged metrics)"
                for m, key in (
                    ("LossSpikeMonitor", "loss_spike/"),
                    ("GradNormMonitor", "grad_norm/"),
                    ("ActivationMonitor", "activation/"),
                )
                if ev.metrics.matching("^" + key)
            ]
        if names:
            acts = Counter(str(e.get("payload", {}).get("action")) for e in ev.events_of("monitor.anomaly"))
            n = sum(acts.values())
            detail = ", ".join(names) + f"; {n} anomal{'y' if n == 1 else 'ies'}"
            if acts:
                detail += " (actions: " + ", ".join(f"{k} ×{v}" for k, v in sorted(acts.items())) + ")"
            halts = ev.events_of("monitor.halt")
            if halts:
                detail += f"; HALTED at step {halts[-1].get('payload', {}).get('step')}"
            put("training_monitors", "alert" if n else "active", detail, anomalies)
        else:
            put("training_monitors", "absent", "no training monitor (loss spikes, gradient norms, activations)")
        # DP
        dp = ev.events_of("privacy.start", "privacy.epsilon", "privacy.end", "privacy.budget_exhausted")
        if dp:
            p = self.privacy()
            status = "alert" if ev.events_of("privacy.budget_exhausted") else "active"
            put(
                "differential_privacy",
                status,
                f"ε = {p.get('epsilon', float('nan')):.3g} at δ = {p.get('delta')} after {p.get('steps')} steps "
                f"(budget {p.get('budget')}, noise σ {p.get('noise_multiplier')}, clip {p.get('max_grad_norm')})"
                + ("; BUDGET EXHAUSTED" if status == "alert" else ""),
                dp,
            )
        else:
            put("differential_privacy", "absent", "no DP-SGD: no privacy guarantee against membership inference")
        # signing
        sign = ev.events_of("integrity.configured", "checkpoint.signed", "checkpoint.refused")
        cks = ev.checkpoints
        if sign or any(c.signature != "unsigned" for c in cks):
            conf = ev.events_of("integrity.configured")
            fp = conf[-1].get("payload", {}).get("key_fingerprint") if conf else None
            by = Counter(c.signature for c in cks)
            failed = by.get("failed", 0) + len(ev.events_of("checkpoint.refused"))
            put(
                "checkpoint_signing",
                "failed" if failed else "active",
                f"key {_short(fp, 16)}…; {len(cks)} checkpoint(s): "
                + ", ".join(f"{k} {v}" for k, v in sorted(by.items())),
                sign,
                [f for f in ev.files if f["path"].endswith(".ckpt.sig")],
                key_fingerprint=fp,
            )
        else:
            put("checkpoint_signing", "absent", "checkpoints are not signed: tampering cannot be detected")
        # audit trail
        if ev.audit_path is not None:
            head = "; signed head " + (
                "verified"
                if ev.head is not None and ev.head.ok
                else ("FAILED" if ev.head is not None else "not checked")
            )
            status = "active" if ev.chain.ok and (ev.head is None or ev.head.ok) else "failed"
            files = [
                f for f in (ev.file_entry(ev.audit_path), ev.file_entry(ev.head_file) if ev.head_file else None) if f
            ]
            put(
                "audit_trail",
                status,
                f"{len(ev.events)} event(s), chain {'verifies' if ev.chain.ok else 'BROKEN: ' + str(ev.chain.error)}"
                + head,
                ev.events_of("run.start", "run.end"),
                files,
            )
        else:
            put("audit_trail", "absent", "no audit log")
        # gate
        gate_events = ev.events_of("gate.decision")
        verdicts = [(c.path, c.gate) for c in cks if c.gate != "none"]
        if verdicts or gate_events or ev.gate_reports:
            failed_gate = [p for p, g in verdicts if g in ("failed", "invalid")]
            passed_gate = [p for p, g in verdicts if g == "passed"]
            detail = f"{len(passed_gate)} checkpoint(s) passed, {len(failed_gate)} failed or invalid"
            if any(g == "unverified" for _, g in verdicts):
                detail += "; attestations not verified (no --public-key)"
            put(
                "deployment_gate",
                "alert" if failed_gate else "active",
                detail,
                gate_events,
                [f for f in ev.files if f["path"].endswith((".attestation.json", ".gate.json"))],
            )
        else:
            put("deployment_gate", "absent", "no gate attestation for any checkpoint of this run")
        # export
        exp = ev.events_of(
            "model.exported",
            "model.export_refused",
            "model.export_ungated",
            "gate.release_allowed",
            "gate.release_refused",
            "gate.approved",
        )
        if exp:
            types = Counter(str(e["type"]) for e in exp)
            status = "alert" if types.get("model.export_ungated") or types.get("model.export_refused") else "active"
            put("release_export", status, ", ".join(f"{k} ×{v}" for k, v in sorted(types.items())), exp)
        else:
            put("release_export", "absent", "not exported (or exported without this run's audit log)")
        # drift
        drift = ev.events_of("drift.reference", "drift.checked", "drift.alert")
        if drift or ev.metrics.matching("^drift/"):
            alerts = ev.events_of("drift.alert")
            put("drift_monitoring", "alert" if alerts else "active", f"{len(alerts)} drift alert(s)", drift)
        else:
            put("drift_monitoring", "absent", "no output-distribution drift monitoring")
        # incidents
        inc = ev.events_of("incident.opened", "incident.bundle", "incident.rollback")
        if inc:
            types = Counter(str(e["type"]) for e in inc)
            put("incident_response", "active", ", ".join(f"{k} ×{v}" for k, v in sorted(types.items())), inc)
        else:
            put("incident_response", "absent", "no incident opened for this run")
        rows = []
        for control in self.catalog.controls:
            row = {"id": control["id"], "title": control["title"], **found[control["id"]]}
            for kind in ("owasp", "atlas", "nist"):
                row[kind] = [{"id": i, "name": self.catalog.describe(kind, i)} for i in control.get(kind, [])]
            rows.append(row)
        return rows

    # -- details ----------------------------------------------------------------------------------
    def scan_families(self) -> Counter[str]:
        """Findings per scanner family (``injection``, ``pii``...), from scan reports and the custody chain."""
        fam: Counter[str] = Counter()
        for _, doc in self.evidence.scan_reports:
            for key, n in (doc.get("counts") or {}).items():
                fam[str(key).split("/", 1)[0]] += int(n)
        if not fam:  # in-training scanners: the custody chain records what they did, per action
            for _, c in self._custody():
                if "scanners" in (c.get("params") or {}) or c.get("name") == "scan":
                    for action, ids in (c.get("affected") or {}).items():
                        fam[f"{action} (custody)"] += len(ids)
        return fam

    def anomalies(self) -> list[dict[str, Any]]:
        return [
            {"seq": e.get("seq"), "verified": self.evidence.is_verified(e), **e.get("payload", {})}
            for e in self.evidence.events_of("monitor.anomaly")
        ]

    def privacy(self) -> dict[str, Any]:
        ev = self.evidence
        start = ev.events_of("privacy.start")
        last = ev.events_of("privacy.end", "privacy.epsilon", "privacy.budget_exhausted")
        p: dict[str, Any] = dict(start[-1].get("payload", {})) if start else {}
        if last:
            p.update({k: v for k, v in last[-1].get("payload", {}).items() if v is not None})
        p["budget"] = p.get("budget_epsilon") or p.get("budget") or p.get("target_epsilon")
        p["curve"] = [
            (float(e["payload"]["steps"]), float(e["payload"]["epsilon"]))
            for e in ev.events_of("privacy.epsilon", "privacy.end", "privacy.budget_exhausted")
            if isinstance(e.get("payload", {}).get("epsilon"), (int, float))
            and isinstance(e["payload"].get("steps"), (int, float))
        ]
        return p

    def gate_checks(self) -> list[dict[str, Any]]:
        """The checks of the newest gate report / attestation of each checkpoint digest."""
        out: dict[str, dict[str, Any]] = {}
        for path, doc in self.evidence.gate_reports:
            if doc.get("checkpoint_sha256"):
                out[str(doc["checkpoint_sha256"])] = {
                    "checkpoint": doc.get("checkpoint"),
                    "file": str(path),
                    "passed": doc.get("passed"),
                    "checks": doc.get("checks", []),
                }
        for digest, entries in self.evidence.attestations.items():
            if digest not in out and entries:
                body = entries[0]["body"]
                out[digest] = {
                    "checkpoint": body.get("checkpoint"),
                    "file": str(entries[0]["file"]),
                    "passed": body.get("passed"),
                    "checks": body.get("checks", []),
                }
        return [{"sha256": k, **v} for k, v in out.items()]

    # -- charts -----------------------------------------------------------------------------------
    def charts(self) -> dict[str, str]:
        """``{name: <svg>}`` of every plot there is data for."""
        ev, m = self.evidence, self.evidence.metrics
        charts: dict[str, str] = {}
        anomalies = self.anomalies()
        loss_key = m.first(["train/loss", "train/loss_step"]) or next(iter(m.matching("^train/loss")), None)
        if loss_key:
            c = SvgChart(
                f"Training loss ({loss_key}) with monitor anomalies",
                y_label="loss",
                chart_id="chart-loss",
                log_y=bool(m.series[loss_key][1].size) and float(m.series[loss_key][1].min()) > 0,
            )
            c.line(m.downsample(loss_key, MAX_BUCKETS), label=loss_key)
            if m.has("loss_spike/threshold"):
                c.line(
                    m.downsample("loss_spike/threshold", MAX_BUCKETS),
                    label="spike threshold",
                    color="#868e96",
                    dash="4 3",
                )
            c.markers(*self._markers(anomalies, "loss", loss_key))
            charts["loss"] = c.render()
        if m.has("grad_norm/global"):
            c = SvgChart("Gradient norm (global) with anomalies", y_label="‖g‖", chart_id="chart-gradnorm", log_y=True)
            c.line(m.downsample("grad_norm/global", MAX_BUCKETS), label="grad_norm/global")
            if m.has("grad_norm/global_clipped"):
                c.line(m.downsample("grad_norm/global_clipped", MAX_BUCKETS), label="clipped", dash="4 3")
            c.markers(*self._markers(anomalies, "grad", "grad_norm/global"))
            charts["gradnorm"] = c.render()
        p = self.privacy() if ev.events_of("privacy.start", "privacy.epsilon", "privacy.end") else None
        if p is not None:
            c = SvgChart("Privacy spent: ε over steps vs budget", y_label="ε", chart_id="chart-epsilon")
            curve = [(0.0, 0.0), *p["curve"]]
            final = f", final {curve[-1][1]:.3g}" if p["curve"] else ""
            c.line(curve, label=f"ε (δ={p.get('delta')}){final}", color="#2f9e44", width=2)
            c.markers(
                [(x, y, f"ε={y:.3g} after {int(x)} steps", "#2f9e44") for x, y in p["curve"]],
                labels=[""] * len(p["curve"]),
            )
            if p.get("budget"):
                c.hline(float(p["budget"]), label=f"budget ε={p['budget']}")
            charts["epsilon"] = c.render()
        modules = sorted({k.rsplit("/", 1)[0] for k in m.matching(r"^activation/.*/(std|max_abs)$")})
        if modules:
            c = SvgChart(
                f"Activation bands: std to max |a| per module ({min(len(modules), 4)} of {len(modules)})",
                y_label="activation magnitude",
                chart_id="chart-activation",
                log_y=True,
            )
            for i, mod in enumerate(modules[:4]):
                color = PALETTE[i]
                label = mod.removeprefix("activation/").removeprefix("model.")[-32:]
                lower, upper = m.downsample(f"{mod}/std", 300), m.downsample(f"{mod}/max_abs", 300)
                if lower and upper:
                    c.band(lower, upper, label=f"{label} std..max|a|", color=color)
                c.line(upper or lower, label=f"{label} {'max|a|' if upper else 'std'}", color=color)
            charts["activation"] = c.render()
        fam = self.scan_families()
        if fam:
            rows = [{"label": k, "value": v} for k, v in fam.most_common(12)]
            charts["scan"] = SvgChart.bars("Scan findings per family", rows, chart_id="chart-scan")
        gates = self.gate_checks()
        if gates:
            # the gate of the newest checkpoint file the run still has (verdicts belong to digests)
            steps = {c.sha256: c.global_step or -1 for c in ev.checkpoints if c.sha256}
            current = [g for g in gates if g["sha256"] in steps]
            g = max(current, key=lambda g: steps[g["sha256"]]) if current else gates[-1]
            stale = "" if current else "; no checkpoint file of the run has this digest now"
            rows = [
                {
                    "label": str(ch.get("name")),
                    "value": ch.get("value"),
                    "threshold": ch.get("threshold"),
                    "ok": bool(ch.get("passed")),
                    "note": f"{ch.get('op', '')} {ch.get('threshold')}",
                }
                for ch in g["checks"]
            ]
            verdict = "PASSED" if g.get("passed") else "FAILED"
            title = f"Gate checks vs thresholds ({g.get('checkpoint')} {g['sha256'][:10]}, {verdict}{stale})"
            charts["gate"] = SvgChart.bars(title, rows, chart_id="chart-gate")
        drift_keys = [k for k in ("drift/psi", "drift/js", "drift/ks") if m.has(k)]
        if drift_keys:
            c = SvgChart("Output drift (PSI / JS / KS)", y_label="distance", chart_id="chart-drift")
            for k in drift_keys:
                c.line(m.downsample(k, MAX_BUCKETS), label=k)
            alerts = [e for e in ev.events_of("drift.alert")]
            if alerts and m.has("drift/psi"):
                xs, ys = (a.tolist() for a in m.series["drift/psi"])
                c.markers([(xs[-1], ys[-1], f"{len(alerts)} drift alert(s)", "#c92a2a")])
            charts["drift"] = c.render()
        return charts

    def _markers(
        self, anomalies: list[dict[str, Any]], which: str, key: str
    ) -> tuple[list[tuple[float, float, str, str]], list[str]]:
        """Markers (full text on hover) and their short labels for the loss or the gradient-norm chart."""
        lookup = self.evidence.metrics.lookup(key)
        out: list[tuple[float, float, str, str]] = []
        labels: list[str] = []
        for a in anomalies:
            monitor = str(a.get("monitor", ""))
            if which == "loss" and "Grad" in monitor or which == "grad" and "Grad" not in monitor:
                continue
            step = float(a.get("step") or 0)
            value = a.get("value")
            y = (
                float(value)
                if isinstance(value, (int, float)) and which == "loss" and "Loss" in monitor
                else lookup.get(step, float("nan"))
            )
            action = str(a.get("action"))
            restored = f" → restored step {a['restored_step']}" if a.get("restored_step") is not None else ""
            text = f"seq {a.get('seq')}: {monitor} {a.get('metric')} at step {int(step)}: {action}{restored}"
            out.append((step, y, text, ACTION_COLORS.get(action, "#c92a2a")))
            labels.append(f"#{a.get('seq')} {action} @{int(step)}" + (f"→{a['restored_step']}" if restored else ""))
        return out, labels

    # -- output -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The content of ``report.json``."""
        if self._dict is None:
            from secure_train.core.version import __version__

            ev = self.evidence
            m = ev.metrics
            series = {k: m.summary(k) for k in m.keys() if not k.startswith("activation/")}
            self._dict = {
                "schema": SCHEMA,
                "run": self.name,
                "run_dir": str(ev.run_dir),
                "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "secure_train_version": __version__,
                "frameworks": {
                    k: {kk: vv for kk, vv in v.items() if kk != "items"} for k, v in self.catalog.frameworks.items()
                },
                "integrity": self.integrity(),
                "controls": self.controls(),
                "anomalies": self.anomalies(),
                "privacy": {k: v for k, v in self.privacy().items() if k != "curve"}
                if ev.events_of("privacy.start")
                else None,
                "scan_families": dict(self.scan_families()),
                "gate": self.gate_checks(),
                "metrics": series,
                "files": ev.files,
            }
        return self._dict
