"""``secure-train report RUN_DIR [RUN_B] [--public-key PUB] [--out DIR]``: the security report.

Writes ``report.html`` (self-contained), ``report.md`` and ``report.json`` to ``--out``
(default ``RUN_DIR/report``). With two runs the page puts them side by side (e.g. defended vs
undefended). Exit status 0, or 1 when the evidence of a run fails verification (tampered).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from secure_train.commands import ArgumentParser

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="secure-train report",
        description="Security report of a run (HTML, Markdown, JSON): integrity, controls, framework mapping, plots.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run log directory; give two to compare")
    parser.add_argument("--public-key", default=None, help="signer's public key: verify signed head, checkpoints, gate")
    parser.add_argument("--out", default=None, help="output directory (default: RUN_DIR/report)")
    parser.add_argument(
        "--evidence-dir", action="append", default=[], help="more directories with gate/scan reports (repeatable)"
    )
    parser.add_argument("--catalog", default=None, help="control catalogue JSON (default: the shipped mapping)")
    return parser


def main(argv: list[str]) -> int:
    from secure_train.core.errors import ConfigError
    from secure_train.response.report import ControlCatalog, ReportRenderer, SecurityReport

    args = build_parser().parse_args(argv)
    if len(args.runs) > 2:
        raise ConfigError(f"give one run directory, or two to compare; got {len(args.runs)}")
    start = time.perf_counter()
    catalog = ControlCatalog.load(args.catalog)
    reports = [
        SecurityReport.from_run(r, public_key=args.public_key, search_dirs=args.evidence_dir, catalog=catalog)
        for r in args.runs
    ]
    out = Path(args.out) if args.out else Path(args.runs[0]) / "report"
    paths = ReportRenderer(reports, out).write(out)
    tampered = False
    for r in reports:
        integ = r.to_dict()["integrity"]
        tampered = tampered or integ["verdict"] == "TAMPERED"
        active = sum(c["status"] != "absent" for c in r.to_dict()["controls"])
        print(
            f"{r.name}: evidence {integ['verdict']}; {active} of {len(r.to_dict()['controls'])} controls active; "
            f"{len(r.to_dict()['anomalies'])} anomalies"
        )
        for problem in integ["problems"]:
            print(f"  TAMPERED: {problem}")
    print(f"wrote {paths['html']}, {paths['md']}, {paths['json']} in {time.perf_counter() - start:.2f} s")
    return 1 if tampered else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
