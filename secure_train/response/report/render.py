"""HTML page and Markdown twin of one security report, or of two side by side.

The page is self-contained: inline CSS, inline SVG charts, no script, no external resource, so
it opens offline, in a mail attachment or from a CI artifact. Links point into the run
directory (relative paths) and to the audit events cited (``#seq-N`` anchors of the evidence
appendix, which lists each with its hash).

Example:
    >>> import tempfile
    >>> from secure_train.core.audit_log import AuditLog
    >>> from secure_train.response.report.builder import SecurityReport
    >>> d = tempfile.mkdtemp()
    >>> _ = AuditLog(f"{d}/audit.jsonl").record("run.start", source="docs")
    >>> page = ReportRenderer([SecurityReport.from_run(d)]).html()
    >>> page.startswith("<!DOCTYPE html>") and 'id="integrity"' in page and "<script" not in page
    True
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

from secure_train.core.errors import ConfigError
from secure_train.response.report.builder import SecurityReport

__all__ = ["ReportRenderer"]

CSS = """
:root{--ok:#2b8a3e;--bad:#c92a2a;--warn:#e67700;--mute:#868e96;--line:#dee2e6}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#212529;background:#f8f9fa}
main{max-width:1320px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:4px 0}
h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.sub{color:var(--mute);font-size:12.5px}
.banner{border-radius:8px;padding:12px 16px;margin:12px 0;color:#fff}
.banner h2{border:0;margin:0 0 4px;color:#fff;font-size:18px}
.banner ul{margin:4px 0 0 18px;padding:0}
.b-TAMPERED{background:var(--bad)}
.b-verified{background:var(--ok)}
.b-unverified{background:#5c7cfa}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:14px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border:1px solid var(--line);padding:4px 7px;text-align:left;vertical-align:top}
th{background:#f1f3f5}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.st{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;color:#fff;
white-space:nowrap}
.st-active,.st-verified,.st-passed{background:var(--ok)}
.st-absent,.st-none,.st-unknown,.st-not-checked,.st-unsigned,.st-unverified{background:var(--mute)}
.st-alert{background:var(--warn)}
.st-failed,.st-broken,.st-invalid,.st-TAMPERED{background:var(--bad)}
tr.absent td{color:#6c757d;background:#fbfbfb}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(630px,1fr));gap:12px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:8px}
.chart{max-width:100%;height:auto}
.chart .plot{fill:#fff;stroke:#ced4da}
.chart .grid{stroke:#f1f3f5}
.chart .tk{font-size:10px;fill:#495057}
.chart .al{font-size:11px;fill:#495057}
.chart .ct{font-size:12.5px;font-weight:600;fill:#212529}
.chart .lg{font-size:10px;fill:#343a40}
.chart .mk{font-size:9.5px;font-weight:600}
a{color:#1864ab}
details summary{cursor:pointer;color:#1864ab}
.tag{font-family:ui-monospace,monospace;font-size:11.5px;white-space:nowrap}
"""


def _st(status: str) -> str:
    return f'<span class="st st-{escape(status.replace(" ", "-"))}">{escape(status)}</span>'


def _notes(errors: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in errors.items())


class ReportRenderer:
    """Render one report, or two side by side (``[defended, undefended]``).

    Args:
        reports: one or two :class:`~secure_train.response.report.builder.SecurityReport`.
        out_dir: where the page will be written, so links into the run directories are relative.
    """

    def __init__(self, reports: list[SecurityReport], out_dir: str | os.PathLike[str] | None = None) -> None:
        if not 1 <= len(reports) <= 2:
            raise ConfigError(f"{type(self).__name__}: one report, or two to compare, got {len(reports)}")
        self.reports = reports
        self.docs = [r.to_dict() for r in reports]
        self.out_dir = Path(out_dir) if out_dir is not None else None

    def _href(self, report: SecurityReport, rel: str) -> str:
        target = report.evidence.run_dir / rel
        if self.out_dir is None:
            return escape(str(target))
        return escape(os.path.relpath(target.resolve(), self.out_dir.resolve()))

    def _seq_link(self, i: int, seq: Any, verified: bool = True) -> str:
        mark = "" if verified else "⚠"
        return f'<a class="tag" href="#r{i}-seq-{seq}">#{seq}{mark}</a>'

    # -- sections -------------------------------------------------------------------------------
    def _banner(self, i: int) -> str:
        doc = self.docs[i]
        integ = doc["integrity"]
        v = integ["verdict"]
        title = {
            "TAMPERED": "EVIDENCE FAILS VERIFICATION — this run was tampered with",
            "verified": "Evidence verified",
            "unverified": "Evidence partly verified (hash chain only)",
        }[v]
        log = integ["audit_log"]
        lines = [
            f"audit log: {log['verified_events']} of {log['events']} event(s) verify"
            + (f" — {escape(str(log['error']))}" if log["error"] else "")
        ]
        head = integ["signed_head"]
        if head.get("checked"):
            lines.append(
                "signed head: "
                + ("verifies" if head["ok"] else f"FAILS — {escape(str(head['error']))}")
                + (f" ({head['unsigned_tail']} later event(s) not covered)" if head.get("unsigned_tail") else "")
            )
        else:
            lines.append(f"signed head: not checked ({escape(head['reason'])})")
        cks = integ["checkpoints"]
        if cks:
            by: dict[str, int] = {}
            for c in cks:
                by[c["signature"]] = by.get(c["signature"], 0) + 1
            lines.append("checkpoint signatures: " + ", ".join(f"{k} {n}" for k, n in sorted(by.items())))
        lines += [f"<b>{escape(p)}</b>" for p in integ["problems"]]
        items = "".join(f"<li>{x}</li>" for x in lines)
        return (
            f'<section id="integrity{"" if i == 0 else "-b"}" class="banner b-{v}" data-verdict="{v}">'
            f"<h2>{escape(title)}</h2><div>{escape(doc['run'])}</div><ul>{items}</ul></section>"
        )

    def _controls_table(self) -> str:
        head = "".join(f"<th>{escape(d['run'])}</th>" for d in self.docs)
        rows = []
        for k, control in enumerate(self.docs[0]["controls"]):
            cells = []
            absent = True
            for i, d in enumerate(self.docs):
                c = d["controls"][k]
                absent = absent and c["status"] == "absent"
                ev = " ".join(self._seq_link(i, e["seq"], e["verified"]) for e in c["evidence"][:8])
                more = f" +{len(c['evidence']) - 8}" if len(c["evidence"]) > 8 else ""
                cells.append(
                    f"<td>{_st(c['status'])} {escape(c['detail'])}"
                    + (f"<br><span class=sub>events {ev}{more}</span>" if ev else "")
                    + "</td>"
                )
            cls = ' class="absent"' if absent else ""
            rows.append(
                f'<tr{cls} id="control-{control["id"]}"><td><b>{escape(control["title"])}</b></td>'
                + "".join(cells)
                + "</tr>"
            )
        return (
            f'<section id="controls"><h2>Controls: active and absent</h2><table><tr><th>control</th>{head}</tr>'
            + "".join(rows)
            + "</table></section>"
        )

    def _mapping_table(self) -> str:
        fw = self.docs[0]["frameworks"]
        rows = []
        for k, control in enumerate(self.docs[0]["controls"]):

            def items(kind: str, c: dict[str, Any] = control) -> str:
                return (
                    "<br>".join(
                        f'<span class="tag" title="{escape(x["name"])}">{escape(x["id"])}</span>'
                        + ("" if kind == "nist" else f" {escape(x['name'])}")
                        for x in c[kind]
                    )
                    or "—"
                )

            status = " ".join(_st(d["controls"][k]["status"]) for d in self.docs)
            evidence = []
            for i, d in enumerate(self.docs):
                c = d["controls"][k]
                links = [self._seq_link(i, e["seq"], e["verified"]) for e in c["evidence"][:6]]
                links += [
                    f'<a class="tag" href="{self._href(self.reports[i], f["path"])}" title="sha256 {f["sha256"]}">'
                    f"{escape(Path(f['path']).name)} {f['sha256'][:10]}</a>"
                    for f in c["files"][:4]
                ]
                evidence.append(" ".join(links) or "—")
            rows.append(
                f"<tr><td><b>{escape(control['title'])}</b></td><td>{status}</td><td>{items('owasp')}</td>"
                f"<td>{items('atlas')}</td><td>{items('nist')}</td><td>{' | '.join(evidence)}</td></tr>"
            )
        versions = "; ".join(f"{escape(v['name'])} <b>{escape(str(v['version']))}</b>" for v in fw.values())
        nist = {x["id"]: x["name"] for c in self.docs[0]["controls"] for x in c["nist"]}
        legend = "; ".join(f"<b>{escape(k)}</b> {escape(v)}" for k, v in sorted(nist.items()))
        return (
            f'<section id="mapping"><h2>Framework mapping</h2><p class="sub">{versions}. Evidence: audit events '
            f"by seq (⚠ = after the first event that fails verification), files by SHA-256.</p><table><tr>"
            f"<th>control</th><th>status</th><th>OWASP LLM Top 10</th><th>MITRE ATLAS</th><th>NIST AI RMF</th>"
            f"<th>evidence</th></tr>" + "".join(rows) + f"</table><p class=sub>NIST AI RMF: {legend}</p></section>"
        )

    def _charts(self) -> str:
        names = ("loss", "gradnorm", "epsilon", "activation", "scan", "gate", "drift")
        per = [r.charts() for r in self.reports]
        cards = []
        for name in names:
            if not any(name in c for c in per):
                continue
            if len(per) == 1:
                cards.append(f'<div class="card" data-chart="{name}">{per[0][name]}</div>')
            else:
                inner = "".join(
                    f"<div><div class=sub>{escape(d['run'])}</div>"
                    + (c.get(name) or "<p class=sub>no data</p>")
                    + "</div>"
                    for c, d in zip(per, self.docs, strict=True)
                )
                cards.append(f'<div class="card cols" data-chart="{name}">{inner}</div>')
        if not cards:
            return (
                '<section id="charts"><h2>Plots</h2><p class="sub">no logged metrics (metrics.csv) found</p></section>'
            )
        legend = " ".join(
            f'<span class="st" style="background:{c}">{a}</span>'
            for a, c in (("warn", "#e8590c"), ("skip", "#9c36b5"), ("halt", "#c92a2a"), ("rollback", "#0b7285"))
        )
        return (
            f'<section id="charts"><h2>Plots</h2><p class="sub">anomaly markers by action taken: {legend}</p>'
            f'<div class="{"charts" if len(per) == 1 else ""}">' + "".join(cards) + "</div></section>"
        )

    def _anomalies(self, i: int) -> str:
        rows = "".join(
            f"<tr><td>{self._seq_link(i, a['seq'], a['verified'])}</td><td>{a.get('step')}</td>"
            f"<td>{escape(str(a.get('monitor')))}</td><td>{escape(str(a.get('metric')))}</td>"
            f"<td>{a.get('value')}</td><td>{a.get('threshold')}</td><td>{_st(str(a.get('action')))}"
            + (f" restored step {a['restored_step']}" if a.get("restored_step") is not None else "")
            + "</td></tr>"
            for a in self.docs[i]["anomalies"][:200]
        )
        if not rows:
            return "<p class=sub>no monitor anomaly</p>"
        return (
            "<table><tr><th>seq</th><th>step</th><th>monitor</th><th>metric</th><th>value</th><th>threshold</th>"
            f"<th>action</th></tr>{rows}</table>"
        )

    def _checkpoints(self, i: int) -> str:
        cks = self.docs[i]["integrity"]["checkpoints"]
        if not cks:
            return "<p class=sub>no checkpoint</p>"
        rows = "".join(
            f"<tr><td><code>{escape(c['path'])}</code></td><td>{c['global_step']}</td>"
            f"<td class=mono title='{c['sha256']}'>{c['sha256'][:16]}</td><td>{_st(c['signature'])}</td>"
            f"<td>{_st(c['trail'])}</td><td>{_st(c['gate'])}</td>"
            f"<td class=sub>{escape(_notes(c['errors']))}</td></tr>"
            for c in cks
        )
        return (
            "<table><tr><th>checkpoint</th><th>step</th><th>sha256</th><th>signature</th><th>audit trail</th>"
            f"<th>gate</th><th>notes</th></tr>{rows}</table>"
        )

    def _appendix(self, i: int) -> str:
        report = self.reports[i]
        cited: set[Any] = set()
        for c in self.docs[i]["controls"]:
            cited.update(e["seq"] for e in c["evidence"])
        cited.update(a["seq"] for a in self.docs[i]["anomalies"])
        rows = "".join(
            f'<tr id="r{i}-seq-{e.get("seq")}"><td>{e.get("seq")}</td><td>{escape(str(e.get("time")))}</td>'
            f"<td><code>{escape(str(e.get('type')))}</code></td><td>{escape(str(e.get('source')))}</td>"
            f"<td class=mono>{escape(str(e.get('hash'))[:16])}</td>"
            f"<td>{'yes' if report.evidence.is_verified(e) else '<b>NO</b>'}</td>"
            f"<td class=sub>{escape(json.dumps(e.get('payload'), default=str)[:300])}</td></tr>"
            for e in report.evidence.events
            if e.get("seq") in cited
        )
        files = "".join(
            f'<tr><td><a href="{self._href(report, f["path"])}">{escape(f["path"])}</a></td>'
            f"<td class=mono>{f['sha256']}</td><td>{f['size']}</td></tr>"
            for f in self.docs[i]["files"][:400]
        )
        return (
            f"<details open><summary>cited audit events ({len(cited)})</summary><table><tr><th>seq</th><th>time</th>"
            f"<th>type</th><th>source</th><th>hash</th><th>verified</th><th>payload</th></tr>{rows}</table></details>"
            f"<details><summary>files ({len(self.docs[i]['files'])}) by SHA-256</summary><table><tr><th>file</th>"
            f"<th>sha256</th><th>bytes</th></tr>{files}</table></details>"
        )

    def html(self) -> str:
        """The whole page."""
        d0 = self.docs[0]
        title = "Security report: " + " vs ".join(d["run"] for d in self.docs)
        banners = "".join(self._banner(i) for i in range(len(self.docs)))
        per_run = []
        for i, d in enumerate(self.docs):
            per_run.append(
                f"<div><h2>{escape(d['run'])}: anomalies</h2>{self._anomalies(i)}"
                f"<h2>{escape(d['run'])}: checkpoints</h2>{self._checkpoints(i)}"
                f'<h2 id="evidence{"" if i == 0 else "-b"}">{escape(d["run"])}: evidence</h2>'
                f"{self._appendix(i)}</div>"
            )
        body = (
            f"<main><h1>{escape(title)}</h1><div class=sub>generated {escape(d0['generated'])} by secure-train "
            f"{escape(d0['secure_train_version'])}; run directory "
            + ", ".join(f"<code>{escape(d['run_dir'])}</code>" for d in self.docs)
            + "</div>"
            f'<div class="{"cols" if len(self.docs) > 1 else ""}">{banners}</div>'
            + self._controls_table()
            + self._charts()
            + self._mapping_table()
            + f'<div class="{"cols" if len(self.docs) > 1 else ""}">'
            + "".join(per_run)
            + "</div></main>"
        )
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>{escape(title)}</title><style>{CSS}</style></head>'
            f"<body>{body}</body></html>\n"
        )

    def markdown(self) -> str:
        """The Markdown twin (for a pull request): verdicts, controls, mapping, anomalies, checkpoints."""
        out = ["# Security report: " + " vs ".join(d["run"] for d in self.docs), ""]
        for d in self.docs:
            integ = d["integrity"]
            mark = {"TAMPERED": "🔴 **TAMPERED**", "verified": "🟢 verified", "unverified": "🔵 partly verified"}
            out.append(
                f"**{d['run']}** — evidence: {mark[integ['verdict']]}; audit log "
                f"{integ['audit_log']['verified_events']}/{integ['audit_log']['events']} events verify"
            )
            out += [f"- **{p}**" for p in integ["problems"]]
            out += [f"- {p}" for p in integ["unchecked"][:5]]
            out.append("")
        out += [
            "## Controls",
            "",
            "| control | " + " | ".join(d["run"] for d in self.docs) + " |",
            "|---|" + "---|" * len(self.docs),
        ]
        for k, c in enumerate(self.docs[0]["controls"]):
            cells = [
                f"**{d['controls'][k]['status']}** {d['controls'][k]['detail']}".replace("|", "\\|") for d in self.docs
            ]
            out.append(f"| {c['title']} | " + " | ".join(cells) + " |")
        fw = self.docs[0]["frameworks"]
        out += [
            "",
            "## Framework mapping",
            "",
            "; ".join(f"{v['name']} {v['version']}" for v in fw.values()),
            "",
            "| control | OWASP LLM | MITRE ATLAS | NIST AI RMF | evidence (audit seq / files) |",
            "|---|---|---|---|---|",
        ]
        for c in self.docs[0]["controls"]:
            ev = " ".join(f"#{e['seq']}" for e in c["evidence"][:6])
            files = " ".join(f"`{Path(f['path']).name}` {f['sha256'][:10]}" for f in c["files"][:3])
            out.append(
                f"| {c['title']} | {', '.join(x['id'] for x in c['owasp']) or '—'} | "
                f"{', '.join(x['id'] for x in c['atlas']) or '—'} | {', '.join(x['id'] for x in c['nist'])} | "
                f"{(ev + ' ' + files).strip() or '—'} |"
            )
        for d in self.docs:
            out += ["", f"## {d['run']}: anomalies", ""]
            if d["anomalies"]:
                out += [
                    "| seq | step | monitor | metric | value | threshold | action |",
                    "|---|---|---|---|---|---|---|",
                ]
                out += [
                    f"| {a['seq']} | {a.get('step')} | {a.get('monitor')} | {a.get('metric')} | {a.get('value')} | "
                    f"{a.get('threshold')} | {a.get('action')} |"
                    for a in d["anomalies"][:100]
                ]
            else:
                out.append("none")
            out += ["", f"## {d['run']}: checkpoints", ""]
            cks = d["integrity"]["checkpoints"]
            if cks:
                out += ["| checkpoint | step | sha256 | signature | audit trail | gate |", "|---|---|---|---|---|---|"]
                out += [
                    f"| `{c['path']}` | {c['global_step']} | `{c['sha256'][:16]}` | {c['signature']} | {c['trail']} | "
                    f"{c['gate']} |"
                    for c in cks
                ]
            else:
                out.append("none")
        out += ["", "Plots: see `report.html` (self-contained).", ""]
        return "\n".join(out)

    def write(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write ``report.html``, ``report.md`` and ``report.json`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.out_dir = out
        paths = {"html": out / "report.html", "md": out / "report.md", "json": out / "report.json"}
        paths["html"].write_text(self.html(), encoding="utf-8")
        paths["md"].write_text(self.markdown(), encoding="utf-8")
        doc: Any = (
            self.docs[0] if len(self.docs) == 1 else {"schema": "secure-train.report-comparison/1", "runs": self.docs}
        )
        paths["json"].write_text(json.dumps(doc, indent=1, default=str, ensure_ascii=False) + "\n", encoding="utf-8")
        return paths
