"""``secure-train data manifest|verify`` and ``secure-train scan``: provenance and content checks.

``data manifest PATH --source S --license L [-o M]`` hashes a file or directory into a
manifest (signed when ``--key`` or ``$SECURE_TRAIN_SIGNING_KEY`` gives a key);
``data verify M [--public-key K] [--allow-unsigned]`` exits 1 naming changed files and
records, and exits 1 when the signature is missing, invalid or could not be checked: it is
checked with ``--public-key``, else the public half of ``$SECURE_TRAIN_SIGNING_KEY``, never
with a key the manifest names (``--allow-unsigned`` accepts matching contents alone). ``scan
PATH`` streams a data file through the scanners, writes JSON and Markdown reports, applies
actions (``--action pii=redact --action injection=quarantine``) to a sanitized copy
(``--out``), appends the step to a manifest's chain of custody (``--manifest``: re-signed
only after its signature verified under the configured key), and exits 1 when the policy
(``--fail-on``) is violated. Reports go to the current directory (``./NAME.scan.json`` and
``.md``) unless ``--report STEM`` says otherwise, never next to a possibly read-only input.
``data poison PATH --workers N [--engine ray]`` runs the ``ngram`` poison detector over a sharded
corpus as map -> reduce -> score on the engine, writes ``./NAME.poison.json`` and exits 1 when
it flags records.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from secure_train.commands import ArgumentParser
from secure_train.core.errors import ConfigError, DataError
from secure_train.data_security.manifest import Manifest, trusted_key, verify_manifest

__all__ = ["main", "main_scan"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="secure-train data", description="Data provenance manifests.")
    sub = parser.add_subparsers(dest="action", required=True)
    man = sub.add_parser("manifest", help="hash a data file or directory into a provenance manifest")
    man.add_argument("path", help="data file, or a directory of .tsv/.csv/.jsonl/.json/.txt files")
    man.add_argument("--source", required=True, help="where the data came from (URL, dataset name, vendor)")
    man.add_argument("--license", required=True, help="the data's licence")
    man.add_argument("--description", default="")
    man.add_argument("-o", "--output", help="manifest file (default: PATH.manifest.json, or DIR/manifest.json)")
    man.add_argument("--key", help="private key to sign with (default: $SECURE_TRAIN_SIGNING_KEY when set)")
    man.add_argument("--no-sign", action="store_true", help="do not sign even when a key is configured")
    man.add_argument("--quiet", action="store_true", help="no progress bar")
    _engine_args(man)
    _poison_parser(sub)
    ver = sub.add_parser("verify", help="recompute every hash; exit 1 naming changed files and records")
    ver.add_argument("manifest")
    ver.add_argument(
        "--public-key",
        help="trusted signer's public key (PEM file); default: the public half of $SECURE_TRAIN_SIGNING_KEY",
    )
    ver.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="exit 0 when the contents match although the manifest is unsigned or its signature was not checked",
    )
    # accepted for compatibility: a signature is now required unless --allow-unsigned
    ver.add_argument("--require-signature", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "poison":
        return _poison(args)
    if args.action == "manifest":
        target = Path(args.path)
        out = (
            Path(args.output)
            if args.output
            else (target / "manifest.json" if target.is_dir() else target.with_name(target.name + ".manifest.json"))
        )
        manifest = Manifest.build(
            target,
            source=args.source,
            license=args.license,
            description=args.description,
            progress=not args.quiet,
            workers=1 if args.workers is None else args.workers,  # 0 or less: ConfigError
            engine=args.engine or "local",
        )
        key = None
        if args.key:
            from secure_train.core.keys import load_private_key

            key = load_private_key(args.key)
        manifest.save(out, private_key=key, sign=not args.no_sign)
        n = sum(f["n_records"] for f in manifest.data["files"])
        print(
            f"wrote {out}: {len(manifest.data['files'])} file(s), {n} records, merkle root "
            f"{manifest.data['merkle_root'][:16]}..., digest {manifest.digest[:16]}..., "
            f"{'signed' if manifest.signed else 'unsigned'}"
        )
        if not manifest.signed:
            print(
                "note: unsigned; training with it needs allow_unsigned_manifest=True "
                "(sign it: set $SECURE_TRAIN_SIGNING_KEY or pass --key)",
                file=sys.stderr,
            )
        return 0
    return _verify(args)


def _verify(args: argparse.Namespace) -> int:
    check = verify_manifest(
        args.manifest, public_key=trusted_key(args.public_key), require_signature=not args.allow_unsigned
    )
    if not check.ok:
        for problem in check.problems:
            print(f"FAILED: {problem}", file=sys.stderr)
        if check.signature == "unchecked" or (check.signature == "unsigned" and check.key_fingerprint is None):
            print(
                "FAILED: the signature was not checked: give --public-key or set $SECURE_TRAIN_SIGNING_KEY; "
                "--allow-unsigned accepts matching contents alone",
                file=sys.stderr,
            )
        return 1
    if check.signature == "verified":
        print(
            f"OK: {args.manifest}: {check.files} file(s) match, signature valid "
            f"(key {str(check.key_fingerprint)[:16]}...)"
        )
    else:
        print(
            f"OK: {args.manifest}: {check.files} file(s) match; signature NOT checked ({check.signature}), "
            "accepted with --allow-unsigned"
        )
    return 0


def _engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers", type=int, default=None, help="parallel workers (datasets num_proc; with --engine ray: CPUs)"
    )
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default=None,
        help="local: datasets worker processes; ray: Ray Data (secure-train[ray]; joins $RAY_ADDRESS or starts one)",
    )


def build_scan_parser() -> argparse.ArgumentParser:
    from secure_train.data_security.scan import ACTIONS, SCANNERS  # scanners load datasketch/scipy: only for scan

    parser = ArgumentParser(
        prog="secure-train scan",
        description="Scan a data file for hidden instructions, invisible/bidi characters, PII and duplicates.",
    )
    parser.add_argument(
        "path",
        help="CSV / TSV / JSONL / plain-text data file; with --workers/--engine also Parquet, a glob or a folder",
    )
    parser.add_argument("--text-column", default="sentence")
    parser.add_argument("--label-column", default="label", help="'' for unlabeled data")
    parser.add_argument("--format", choices=["tsv", "csv", "jsonl", "text"], default=None)
    parser.add_argument(
        "--scanners",
        nargs="+",
        default=list(SCANNERS),
        metavar="SCANNER",
        help=f"any of {', '.join(SCANNERS)}; injection-model=PATH adds a learned detector (secure-train detector)",
    )
    parser.add_argument(
        "--action",
        action="append",
        default=[],
        metavar="KEY=ACTION",
        help=f"scanner or kind -> one of {ACTIONS}, e.g. pii=redact, injection=quarantine (repeatable)",
    )
    parser.add_argument(
        "--fail-on", nargs="*", default=["injection", "unicode"], help="policy: unhandled findings fail"
    )
    parser.add_argument("--no-near-duplicates", action="store_true", help="exact duplicates only (faster)")
    parser.add_argument("--out", help="write the sanitized data here (same format)")
    parser.add_argument("--quarantine", help="JSONL file for quarantined records")
    parser.add_argument(
        "--report",
        default=None,
        help="report path stem -> STEM.json and STEM.md (default: NAME.scan in the current directory, NAME "
        "being the input's file or folder name; reports are no longer written next to the input)",
    )
    parser.add_argument("--manifest", help="append this step to the manifest's chain of custody (re-signed)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    _engine_args(parser)
    return parser


def _manifest_to_extend(path: str) -> Manifest:
    """Load a manifest that ``scan`` will append to and re-sign: with a configured key, its
    current signature must verify under that key first (never launder an edited manifest)."""
    manifest = Manifest.load(path)
    key = trusted_key()
    if key is None:
        return manifest
    if not manifest.signed:
        raise DataError(
            f"{path}: not signed, and $SECURE_TRAIN_SIGNING_KEY would sign it with the custody entry: "
            "rebuild it with `secure-train data manifest` (signed) first"
        )
    if not manifest.verify_signature(key):
        raise DataError(
            f"{path}: signature does not verify under $SECURE_TRAIN_SIGNING_KEY (manifest edited, or signed "
            "by another key); refusing to re-sign it"
        )
    return manifest


def main_scan(argv: list[str]) -> int:
    from secure_train.data_security.scan import DataScanner

    args = build_scan_parser().parse_args(argv)
    actions = {}
    for item in args.action:
        if "=" not in item:
            raise ConfigError(f"--action {item!r}: expected KEY=ACTION")
        key, action = item.split("=", 1)
        actions[key.strip()] = action.strip()
    if args.workers is not None or args.engine is not None:
        return _scan_parallel(args, actions)
    scanner = DataScanner(
        args.scanners,
        actions=actions,
        fail_on=args.fail_on,
        near_duplicates=not args.no_near_duplicates,
        quarantine_path=args.quarantine,
        progress=not args.quiet,
        name=f"scan {Path(args.path).name}",
    )
    manifest = _manifest_to_extend(args.manifest) if args.manifest else None
    report = scanner.scan_file(
        args.path,
        out_path=args.out,
        text_column=args.text_column,
        label_column=args.label_column or None,
        fmt=args.format,
    )
    json_path, md_path = _write_reports(args, report)
    if manifest is not None:
        entry = manifest.append_custody(scanner.custody[-1])
        assert manifest.path is not None
        manifest.save(manifest.path)
        print(f"custody entry {len(manifest.data['custody']) - 1} ({entry.hash[:12]}...) appended to {manifest.path}")
    return _print_summary(args.path, report, f"reports: {json_path}, {md_path}")


def _write_reports(args: argparse.Namespace, report: Any) -> tuple[Path, Path]:
    stem = Path(args.report) if args.report else _default_stem(args.path, "scan")
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")
    json_path.write_text(json.dumps(report.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(report.to_markdown(), encoding="utf-8")
    return json_path, md_path


def _scan_parallel(args: argparse.Namespace, actions: dict[str, str]) -> int:
    """``scan --workers N`` / ``--engine ray``: reports only, over a file, a glob or a folder of shards."""
    for flag in ("out", "quarantine", "manifest"):
        if getattr(args, flag):
            raise ConfigError(f"--{flag} needs the streaming scan: drop --workers/--engine")
    if args.quiet:
        import datasets

        datasets.disable_progress_bars()
    from secure_train.data_security.parallel import ParallelScan

    report = ParallelScan(
        args.scanners,
        actions=actions,
        fail_on=args.fail_on,
        near_duplicates=not args.no_near_duplicates,
        workers=1 if args.workers is None else args.workers,  # 0 or less: ConfigError
        engine=args.engine or "local",
        text_column=args.text_column,
        label_column=args.label_column or None,
    ).scan(args.path)
    json_path, md_path = _write_reports(args, report)
    return _print_summary(
        args.path, report, f"{report.mb_per_s:.2f} MB/s; reports: {json_path}, {md_path}", would="would be "
    )


def _print_summary(path: str, report: Any, last_line: str, *, would: str = "") -> int:
    """Print a scan's counts and what each action touched (``would`` prefixes the actions of a
    report-only scan), then ``last_line``; the exit code: 1 when the policy failed."""
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(report.counts.items())) or "nothing found"
    print(f"{path}: {report.n_records} records, {len(report.flagged_ids)} flagged ({counts})")
    for action, ids in report.affected.items():
        print(f"  {would}{action}: {len(ids)} record(s)")
    print(last_line)
    if not report.ok:
        print(f"POLICY FAILED: unhandled findings of {', '.join(report.failed)}", file=sys.stderr)
        return 1
    return 0


def _default_stem(path: str, what: str) -> Path:
    """``./NAME.what`` in the current directory: the input may sit in a read-only shared folder."""
    name = Path(path.rstrip("/").replace("*", "_").replace("?", "_")).name or "data"
    return Path.cwd() / f"{name}.{what}"


def _poison_parser(sub: Any) -> None:
    poison = sub.add_parser(
        "poison",
        help="ngram poison detector over a sharded corpus: map -> reduce -> score on datasets workers or Ray",
        description="Flag n-grams whose records are almost all one label (trigger words / sentences) and the "
        "records carrying them, over a file, a glob or a folder of JSONL / Parquet / CSV / TSV shards. "
        "Same flags as the in-memory ngram detector (detect_poison) with the same settings. Exit 1 when "
        "records are flagged.",
    )
    poison.add_argument("path", help="data file, glob or folder of shards")
    poison.add_argument("--text-column", default="sentence")
    poison.add_argument("--label-column", default="label")
    poison.add_argument("--max-n", type=int, default=4, help="longest word n-gram tested")
    poison.add_argument("--min-count", type=int, default=10, help="n-grams in fewer records are not tested")
    poison.add_argument("--z-sigma", type=float, default=3.5, help="threshold: mean + Z_SIGMA * std of the z-scores")
    poison.add_argument("--min-purity", type=float, default=0.9, help="share of an n-gram's records with its label")
    poison.add_argument(
        "--no-collapse-overlaps",
        dest="collapse_overlaps",
        action="store_false",
        help="count records contained in a longer record (SST-2's sub-phrases) each, not once per family",
    )
    poison.add_argument(
        "--report", default=None, help="report path stem -> STEM.json (default: NAME.poison in the current directory)"
    )
    poison.add_argument("--quiet", action="store_true", help="no progress bars")
    _engine_args(poison)


def _poison(args: argparse.Namespace) -> int:
    if args.quiet:
        import datasets

        datasets.disable_progress_bars()
    from secure_train.data_security.poison_parallel import ParallelPoisonDetector

    report = ParallelPoisonDetector(
        max_n=args.max_n,
        min_count=args.min_count,
        z_sigma=args.z_sigma,
        min_purity=args.min_purity,
        collapse_overlaps=args.collapse_overlaps,
        workers=1 if args.workers is None else args.workers,  # 0 or less: ConfigError
        engine=args.engine or "local",
        text_column=args.text_column,
        label_column=args.label_column,
    ).detect(args.path)
    stem = Path(args.report) if args.report else _default_stem(args.path, "poison")
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = stem.with_name(stem.name + ".json")
    out.write_text(json.dumps(report.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    grams = ", ".join(f"{g['ngram']!r}->{g['label']} ({g['n_records']})" for g in report.ngrams) or "none"
    print(
        f"{args.path}: {report.n_records} records, {len(report.flagged_ids)} flagged; "
        f"n-grams: {grams}; {report.seconds:.1f} s; report: {out}"
    )
    return 1 if report.flagged_ids else 0
