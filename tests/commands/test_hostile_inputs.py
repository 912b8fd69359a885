"""Hostile-input matrix: every command x every hostile artifact -> one error line, exit 2.

Each case runs ``python -m secure_train ...`` in a subprocess (several at a time) and checks:
exit status 2, exactly one ``secure-train: error:`` line on stderr and no traceback, no marker
file written by a pickle payload, peak resident memory of that very process (``os.wait4``)
under :data:`MAX_RSS_MB` and CPU time under :data:`MAX_CPU_SECONDS` (CPU, not wall time: the test
machine is shared; a YAML bomb burns CPU, a hang is cut at :data:`MAX_WALL_SECONDS`).

Hostile artifacts: a "billion laughs" YAML bomb (also nested under ``model.init_args``),
random bytes, a 2 GiB sparse file (``truncate``; it takes no disk), a path in a missing
folder, and a pickle whose ``__reduce__`` would write a marker file.

Groups: a smoke subset (one case per hostile kind) runs in the quick suite; the torch-free
commands and 13 torch/Lightning cases are ``slow``; ``SECURE_TRAIN_HOSTILE_FULL=1`` adds the
torch cases that repeat a kept case's code path. ``python tests/commands/test_hostile_inputs.py``
runs every case and prints the matrix as a Markdown table.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_RSS_MB = 1024
MAX_CPU_SECONDS = 30.0
MAX_WALL_SECONDS = 300.0
SPARSE_BYTES = 2 * 2**30
WORKERS = 4


class _Payload:
    """Unpickling this runs ``os.system("touch MARKER")``: a command that loads it is owned."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def make_inputs(d: Path, *, signed_sparse: bool = True) -> dict[str, Path]:
    """Write every hostile artifact (and the few genuine files the commands need) under ``d``."""
    from secure_train.core.keys import generate_keypair

    d.mkdir(parents=True, exist_ok=True)
    levels = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + levels
    (d / "bomb.yaml").write_text(bomb)
    nested = "model:\n  class_path: secure_train.models.TextClassifier\n  init_args:\n    bomb:\n"
    nested += "".join("      " + line + "\n" for line in bomb.splitlines())
    nested += "      top: *i\n"
    (d / "nested-bomb.yaml").write_text(nested)
    rng = os.urandom(64 * 1024)
    for name in ("random.yaml", "random.jsonl", "random.ckpt", "random.json", "random.tsv"):
        (d / name).write_bytes(rng)
    for name in ("sparse.yaml", "sparse.jsonl", "sparse.ckpt", "sparse.json", "sparse.tsv"):
        with open(d / name, "wb") as fh:
            fh.truncate(SPARSE_BYTES)
    (d / "pickle.ckpt").write_bytes(pickle.dumps({"state_dict": _Payload(d / "MARKER")}))
    (d / "good.jsonl").write_text("".join(f'{{"probs": [{i % 10 / 10}, {1 - i % 10 / 10}]}}\n' for i in range(50)))
    generate_keypair(d / "key.pem", d / "key.pub", passphrase_env=None)
    from secure_train.core.audit_head import sign_audit_head
    from secure_train.core.audit_log import AuditLog
    from secure_train.core.keys import load_private_key

    AuditLog(d / "audit.jsonl").record("test.event", source="hostile-matrix")
    sign_audit_head(d / "audit.jsonl", load_private_key(d / "key.pem"))
    sig = d / "sig"  # checkpoints whose .sig sidecar is the hostile part
    sig.mkdir()
    (sig / "random.ckpt").write_bytes(b"x")
    (sig / "random.ckpt.sig").write_bytes(rng)
    (sig / "sparse.ckpt").write_bytes(b"x")
    if signed_sparse:  # hashing 2 GiB takes a second or two
        _sign_sparse(d / "signed-sparse.ckpt", d / "key.pem")
    with open(sig / "sparse.ckpt.sig", "wb") as fh:
        fh.truncate(SPARSE_BYTES)
    return {p.stem.replace("-", "_") + "_" + p.suffix.lstrip("."): p for p in d.iterdir()} | {
        "missing": d / "missing-folder" / "sub" / "file",
        "dir": d,
        "random_sig": sig / "random.ckpt",
        "sparse_sig": sig / "sparse.ckpt",
        "signed_sparse": d / "signed-sparse.ckpt",
    }


def _sign_sparse(path: Path, key: Path) -> None:
    """A genuinely signed 2 GiB sparse checkpoint, signed without reading it into memory (its
    shards are all zeros, so one shard digest serves for all)."""
    import hashlib

    from secure_train.core.keys import load_private_key
    from secure_train.core.safe_io import sha256_file
    from secure_train.core.signed_file import DEFAULT_SHARD_SIZE, SignedFile, make_bundle, signature_path

    with open(path, "wb") as fh:
        fh.truncate(SPARSE_BYTES)
    n, rest = divmod(SPARSE_BYTES, DEFAULT_SHARD_SIZE)
    shards = [hashlib.sha256(bytes(DEFAULT_SHARD_SIZE)).hexdigest()] * n
    shards += [hashlib.sha256(bytes(rest)).hexdigest()] if rest else []
    signed = SignedFile(path.name, SPARSE_BYTES, sha256_file(path), DEFAULT_SHARD_SIZE, tuple(shards))
    signature_path(path).write_bytes(make_bundle(signed, load_private_key(key)))


@dataclass(frozen=True)
class Case:
    """One command line; ``{name}`` placeholders are files from :func:`make_inputs`."""

    command: str
    hostile: str
    argv: tuple[str, ...]
    torch: bool = False  # the command imports torch / Lightning before it can refuse
    verdict: bool = False  # a verifying command may answer with its verdict instead: one FAILED line, exit 1
    succeeds: bool = False  # a genuine but huge input: exit 0, nothing on stderr, memory still bounded
    extended: bool = False  # same code path as a kept case: run only with SECURE_TRAIN_HOSTILE_FULL=1


def _ref(name: str) -> str:
    """The placeholder of an input file in :attr:`Case.argv`."""
    return "{" + name + "}"


def _cases() -> list[Case]:
    quick = "recipes/quickstart.yaml"
    suite = "recipes/gate/gate-suite.yaml"
    pub = "{key_pub}"
    c: list[Case] = []
    for cmd in ("fit", "validate", "predict"):
        c += [
            Case(cmd, "YAML bomb", (cmd, "--config", "{bomb_yaml}")),
            Case(cmd, "random bytes", (cmd, "--config", "{random_yaml}")),
            Case(cmd, "2 GiB sparse", (cmd, "--config", "{sparse_yaml}")),
            Case(cmd, "missing folder", (cmd, "--config", "{missing}/x.yaml")),
        ]
    c += [
        Case("fit", "YAML bomb in model.init_args", ("fit", "--config", "{nested_bomb_yaml}")),
        Case("fit", "YAML bomb as --model value", ("fit", "--config", quick, "--model", "{bomb_yaml}")),
        Case("validate", "2 GiB sparse ckpt", ("validate", "--config", quick, "--ckpt_path", "{sparse_ckpt}"), True),
        Case("validate", "pickled object ckpt", ("validate", "--config", quick, "--ckpt_path", "{pickle_ckpt}"), True),
    ]
    for hostile, f in (
        ("random bytes", "random_jsonl"),
        ("2 GiB sparse", "sparse_jsonl"),
        ("missing folder", "missing"),
    ):
        c.append(Case("audit verify", hostile, ("audit", "verify", _ref(f))))
        c.append(Case("audit verify --public-key", hostile, ("audit", "verify", _ref(f), "--public-key", pub)))
    c.append(
        Case(
            "audit verify",
            "random-bytes public key",
            ("audit", "verify", "{audit_jsonl}", "--public-key", "{random_json}"),
        )
    )
    for hostile, f in (
        ("random bytes", "random_ckpt"),
        ("2 GiB sparse", "sparse_ckpt"),
        ("pickled object", "pickle_ckpt"),
        ("missing folder", "missing"),
    ):
        c.append(Case("verify", hostile, ("verify", _ref(f), "--public-key", pub), verdict=f != "missing"))
        c.append(
            Case(
                "export",
                hostile,
                (
                    "export",
                    _ref(f),
                    "--out",
                    "{dir}/out.safetensors",
                    "--public-key",
                    pub,
                    "--signing-key",
                    "{key_pem}",
                    "--allow-ungated",
                ),
                torch=True,
            )
        )
        c.append(Case("gate", hostile, ("gate", _ref(f), "--suite", suite, "--signing-key", "{key_pem}"), torch=True))
        c.append(
            Case(
                "approve",
                hostile,
                (
                    "approve",
                    _ref(f),
                    "--by",
                    "alice",
                    "--role",
                    "security",
                    "--signing-key",
                    "{key_pem}",
                    "--public-key",
                    pub,
                ),
            )
        )
    c.append(Case("verify", "2 GiB sparse public key", ("verify", "{random_ckpt}", "--public-key", "{sparse_json}")))
    c.append(
        Case(
            "verify", "signed 2 GiB sparse (genuine)", ("verify", "{signed_sparse}", "--public-key", pub), succeeds=True
        )
    )
    c.append(
        Case(
            "gate --no-attestation",
            "pickled object",
            ("gate", "{pickle_ckpt}", "--suite", suite, "--no-attestation"),
            torch=True,
        )
    )
    c.append(Case("verify", "random-bytes public key", ("verify", "{random_ckpt}", "--public-key", "{random_json}")))
    c.append(Case("verify", "random-bytes .sig", ("verify", "{random_sig}", "--public-key", pub), verdict=True))
    c.append(Case("verify", "2 GiB sparse .sig", ("verify", "{sparse_sig}", "--public-key", pub)))
    c.append(
        Case(
            "audit verify --public-key",
            "2 GiB sparse key",
            ("audit", "verify", "{audit_jsonl}", "--public-key", "{sparse_json}"),
        )
    )
    for hostile, f in (
        ("YAML bomb", "bomb_yaml"),
        ("random bytes", "random_yaml"),
        ("2 GiB sparse", "sparse_yaml"),
        ("missing folder", "missing"),
    ):
        c.append(
            Case(
                "gate --suite",
                hostile,
                ("gate", "{pickle_ckpt}", "--suite", _ref(f), "--signing-key", "{key_pem}"),
                torch=True,
            )
        )
        c.append(
            Case(
                "export --policy",
                hostile,
                (
                    "export",
                    "{random_ckpt}",
                    "--out",
                    "{dir}/o.safetensors",
                    "--public-key",
                    pub,
                    "--policy",
                    _ref(f),
                ),
            )
        )
        c.append(Case("diff-train", hostile, ("diff-train", "--config", _ref(f), "--out-dir", "{dir}/dt"), torch=True))
    for hostile, f in (("random bytes", "random_tsv"), ("2 GiB sparse", "sparse_tsv"), ("missing folder", "missing")):
        c.append(Case("scan", hostile, ("scan", _ref(f), "--quiet", "--report", "{dir}/scan-report")))
        if f != "random_tsv":  # a manifest hashes any bytes: random bytes are content, not an error
            c.append(
                Case(
                    "data manifest",
                    hostile,
                    (
                        "data",
                        "manifest",
                        _ref(f),
                        "--source",
                        "s",
                        "--license",
                        "l",
                        "--quiet",
                        "-o",
                        "{dir}/m.json",
                        "--no-sign",
                    ),
                )
            )
    for hostile, f in (("random bytes", "random_json"), ("2 GiB sparse", "sparse_json"), ("missing folder", "missing")):
        c.append(Case("data verify", hostile, ("data", "verify", _ref(f))))
    for hostile, f in (
        ("random bytes", "random_jsonl"),
        ("2 GiB sparse", "sparse_jsonl"),
        ("missing folder", "missing"),
    ):
        c.append(
            Case(
                "drift",
                hostile,
                ("drift", "{good_jsonl}", _ref(f), "--audit-log", "{dir}/drift-audit.jsonl"),
                torch=True,
            )
        )
        c.append(
            Case(
                "drift (reference)",
                hostile,
                ("drift", _ref(f), "{good_jsonl}", "--audit-log", "{dir}/drift-audit.jsonl"),
                torch=True,
            )
        )
    c.append(
        Case(
            "export --audit-log",
            "JSONL that is no audit log",
            (
                "export",
                "{random_ckpt}",
                "--out",
                "{dir}/o2.safetensors",
                "--public-key",
                pub,
                "--audit-log",
                "{good_jsonl}",
            ),
        )
    )
    c.append(Case("keygen", "missing folder", ("keygen", "--out", "{missing}/key.pem", "--passphrase-env", "")))
    return c


INLINE_BOMB = (
    "["
    + ",".join(
        ["&a [x,x,x,x,x,x,x,x,x,x]"]
        + [f"&{c} [" + ",".join([f"*{p}"] * 10) + "]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    )
    + "]"
)
"""A billion-laughs bomb in flow style, given as a command-line value (jsonargparse's YAML loader)."""

TORCH_KEPT = {
    ("validate", "2 GiB sparse ckpt"),
    ("export", "2 GiB sparse"),
    ("export", "pickled object"),
    ("gate", "2 GiB sparse"),
    ("gate", "pickled object"),
    ("gate --suite", "YAML bomb"),
    ("gate --suite", "random bytes"),
    ("gate --suite", "2 GiB sparse"),
    ("diff-train", "YAML bomb"),
    ("diff-train", "2 GiB sparse"),
    ("drift", "2 GiB sparse"),
    ("drift (reference)", "random bytes"),
    ("fit", "YAML bomb as a command-line value"),
}
"""The cases that pay for importing torch / Lightning in the slow test; the others of those
commands take the same code path (``SECURE_TRAIN_HOSTILE_FULL=1`` runs them too)."""

CASES = [
    *_cases(),
    Case(
        "fit",
        "YAML bomb as a command-line value",
        ("fit", "--config", "recipes/quickstart.yaml", "--trainer.plugins", INLINE_BOMB),
        torch=True,
    ),
]
CASES = [replace(c, extended=c.torch and (c.command, c.hostile) not in TORCH_KEPT) for c in CASES]
FULL = os.environ.get("SECURE_TRAIN_HOSTILE_FULL") == "1"


@dataclass
class Outcome:
    case: Case
    rc: int | None
    stderr: str
    rss_mb: float
    seconds: float
    cpu_seconds: float
    marker: bool

    def _time_problems(self) -> list[str]:
        out = [f"CPU {self.cpu_seconds:.0f} s"] if self.cpu_seconds >= MAX_CPU_SECONDS else []
        return out + ([f"wall {self.seconds:.0f} s (killed)"] if self.seconds >= MAX_WALL_SECONDS else [])

    def problems(self) -> list[str]:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        out = []
        if self.case.succeeds:
            out = [] if self.rc == 0 and not lines else [f"exit {self.rc}, {len(lines)} stderr lines"]
            out += [f"RSS {self.rss_mb:.0f} MB"] if self.rss_mb >= MAX_RSS_MB else []
            return out + self._time_problems()
        verdict = self.case.verdict and self.rc == 1 and len(lines) == 1 and lines[0].startswith("FAILED: ")
        if self.rc != 2 and not verdict:
            out.append(f"exit {self.rc}")
        if not verdict and (len(lines) != 1 or not lines[0].startswith("secure-train: error: ")):
            out.append(f"{len(lines)} stderr lines")
        if "Traceback" in self.stderr:
            out.append("traceback")
        if self.marker:
            out.append("MARKER written")
        if self.rss_mb >= MAX_RSS_MB:
            out.append(f"RSS {self.rss_mb:.0f} MB")
        out += self._time_problems()
        return out


def run_case(case: Case, files: dict[str, Path], cwd: Path) -> Outcome:
    """Run one case; peak RSS is that process's own ``ru_maxrss`` from ``os.wait4``."""
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in case.argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECURE_TRAIN_")}
    env["PYTHONWARNINGS"] = "ignore"
    err_path = cwd / f"stderr-{threading.get_ident()}-{time.monotonic_ns()}.txt"
    start = time.monotonic()
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "secure_train", *argv],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
        timer = threading.Timer(MAX_WALL_SECONDS, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    stderr = err_path.read_text(errors="replace")
    err_path.unlink()
    cpu = usage.ru_utime + usage.ru_stime
    return Outcome(
        case, proc.returncode, stderr, usage.ru_maxrss / 1024, seconds, cpu, (files["dir"] / "MARKER").exists()
    )


def run_matrix(cases: list[Case], d: Path) -> list[Outcome]:
    files = make_inputs(d, signed_sparse=any(c.succeeds for c in cases))
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(lambda c: run_case(c, files, d), cases))


def table(outcomes: list[Outcome]) -> str:
    rows = [
        "| command | hostile input | exit | stderr (first line) | peak RSS MB | CPU s | wall s | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        first = next((line for line in o.stderr.splitlines() if line.strip()), "")
        first = first.replace("|", "\\|")[:110]
        verdict = "ok" if not o.problems() else "FAIL: " + ", ".join(o.problems())
        cells = [o.case.command, o.case.hostile, o.rc, first, f"{o.rss_mb:.0f}", f"{o.cpu_seconds:.1f}"]
        rows.append("| " + " | ".join(str(c) for c in [*cells, f"{o.seconds:.1f}", verdict]) + " |")
    return "\n".join(rows)


def _check(outcomes: list[Outcome]) -> None:
    failed = [o for o in outcomes if o.problems()]
    assert not failed, "\n" + table(failed) + "\n\nstderr of the first failure:\n" + failed[0].stderr[-3000:]


SMOKE = {
    ("fit", "YAML bomb"),
    ("fit", "2 GiB sparse"),
    ("audit verify", "random bytes"),
    ("audit verify", "2 GiB sparse"),
    ("verify", "2 GiB sparse .sig"),
    ("data verify", "2 GiB sparse"),
    ("scan", "2 GiB sparse"),
    ("keygen", "missing folder"),
}
"""One case per hostile kind, for the quick test run; the whole matrix is marked slow."""


def test_hostile_inputs_smoke(tmp_path):
    cases = [c for c in CASES if (c.command, c.hostile) in SMOKE]
    assert len(cases) == len(SMOKE)
    _check(run_matrix(cases, tmp_path))


@pytest.mark.slow
def test_hostile_inputs_fast_commands(tmp_path):
    """Commands that refuse before importing torch (and a genuine signed 2 GiB file verified in place)."""
    _check(run_matrix([c for c in CASES if not c.torch], tmp_path))


@pytest.mark.slow
def test_hostile_inputs_torch_commands(tmp_path):
    """fit/validate/predict with Lightning, export, gate, drift, diff-train."""
    _check(run_matrix([c for c in CASES if c.torch and (FULL or not c.extended)], tmp_path))


def test_no_abbreviated_options(tmp_path):
    """``--publ`` is not ``--public-key``; ``--trainer.max_epoch`` is not ``--trainer.max_epochs``."""
    from secure_train.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["audit", "verify", str(tmp_path / "a.jsonl"), "--publ", "k.pub"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [[name] for name in __import__("secure_train.cli").cli.COMMANDS]
    + [["audit", "verify"], ["data", "manifest"], ["data", "verify"]],
)
def test_every_command_refuses_abbreviations(argv, capsys):
    """``--hel`` would be completed to ``--help`` (exit 0) by a parser that guesses abbreviations."""
    from secure_train.cli import main

    with pytest.raises(SystemExit) as exc:
        main([*argv, "--hel"])
    assert exc.value.code == 2, f"{' '.join(argv)} completed --hel to --help"


def test_no_abbreviated_lightning_options():
    """jsonargparse (under LightningCLI) completes abbreviations unless ``allow_abbrev=False``."""
    from secure_train.cli import main

    argv = ["fit", "--config", str(ROOT / "recipes/quickstart.yaml"), "--print_config"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--trainer.max_epoch", "2"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:  # the full name is accepted
        main([*argv, "--trainer.max_epochs", "2"])
    assert exc.value.code == 0


def test_last_resort_handler_maps_hostile_file_errors():
    """What escapes the per-site checks still becomes one line; anything else (a bug) is re-raised."""
    import pickle

    from secure_train.cli import _describe

    assert "x.ckpt: No such file or directory" in (
        _describe(FileNotFoundError(2, "No such file or directory", "x.ckpt")) or ""
    )
    assert "not UTF-8" in (_describe(_unicode_error()) or "")
    assert "out of memory" in (_describe(MemoryError()) or "")
    assert "safe unpickler" in (_describe(pickle.UnpicklingError("Weights only load failed\nlong help")) or "")
    assert _describe(RuntimeError("a bug")) is None  # not raised inside torch.load: keep the traceback
    assert _describe(KeyError("a bug")) is None


def test_last_resort_handler_maps_torch_load_errors():
    """A RuntimeError raised inside ``torch.load`` (a zip that is no checkpoint) is a bad file."""
    import io
    import zipfile

    import torch

    from secure_train.cli import _describe

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/other", "x")
    buf.seek(0)
    with pytest.raises(RuntimeError) as exc:
        torch.load(buf, weights_only=True)
    assert (_describe(exc.value) or "").startswith("not a loadable checkpoint")


def _unicode_error() -> UnicodeDecodeError:
    try:
        b"\xff".decode("utf-8")
    except UnicodeDecodeError as err:
        return err
    raise AssertionError


def test_debug_flag_shows_traceback(tmp_path, capsys):
    from secure_train.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["audit", "verify", str(bad)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--debug", "audit", "verify", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("secure-train: error: ")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(table(run_matrix(CASES, Path(tmp))))
