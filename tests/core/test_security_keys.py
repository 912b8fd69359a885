"""Key material never leaves the key loader; keygen keeps private keys out of the work tree.

Every command that loads a key runs with bad and odd key values (PEM with ``Bag Attributes``
lines, a bare base64 body, a one-line body, a truncated key, ``\\n``-escaped PEM, a private key
where a public one goes, ...) as ``$SECURE_TRAIN_SIGNING_KEY`` and as arguments; every line it
prints is searched for the key's bytes (each base64 body line and every 16-character window
of the body).
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import torch
from cryptography.hazmat.primitives import serialization

from secure_train.cli import main as cli_main
from secure_train.core.errors import ConfigError
from secure_train.integrity import generate_keypair, key_fingerprint, load_private_key, load_public_key
from secure_train.integrity.cli_support import verify_ckpt_path

ENV = "SECURE_TRAIN_SIGNING_KEY"
BAG = "Bag Attributes\n    localKeyID: 01 00 00 00\n    friendlyName: signing\nKey Attributes: <No Attributes>\n"


def _body(pem: str) -> str:
    return "".join(line.strip() for line in pem.splitlines() if line.strip() and not line.startswith("-----"))


def _secrets(*pems: str) -> list[str]:
    """Fragments that must never be printed: every body line and every 16-char window of each body."""
    out: list[str] = []
    for pem in pems:
        body = _body(pem)
        out += [line.strip() for line in pem.splitlines() if len(line.strip()) >= 16 and "-----" not in line]
        out += [body[i : i + 16] for i in range(0, len(body) - 15)]
    return out


@pytest.fixture
def keyfiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("SECURE_TRAIN_KEY_PASSPHRASE", raising=False)
    monkeypatch.delenv("SECURE_TRAIN_RELEASE_POLICY", raising=False)
    monkeypatch.setenv("SECURE_TRAIN_VERDICTS", str(tmp_path / "verdicts"))
    priv, pub = generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub", passphrase_env=None)
    pem = priv.read_text()
    key = load_private_key(priv)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    ).decode()
    body = _body(pem)
    values = {
        "bag attributes": BAG + pem,
        "bag attributes, CRLF": (BAG + pem).replace("\n", "\r\n"),
        "escaped newlines": pem.replace("\n", "\\n"),
        "body only": "\n".join(line for line in pem.splitlines() if not line.startswith("-----")),
        "one-line body": body,
        "truncated": pem[: len(pem) // 2],
        "bag, truncated": BAG + pem[: len(pem) // 2],
        "encrypted, no passphrase": BAG + encrypted,
        "leading spaces and junk": "  junk\n\n" + pem + "\ntrailing\n",
        "public key": pub.read_text(),
    }
    return {
        "priv": priv,
        "pub": pub,
        "pem": pem,
        "values": values,
        "secrets": _secrets(pem, encrypted),
        "fp": key_fingerprint(key.public_key()),
    }


VALID = {"bag attributes", "bag attributes, CRLF", "escaped newlines", "leading spaces and junk"}


def _assert_clean(text: str, secrets: list[str], what: str) -> None:
    assert "Traceback" not in text, what
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"{what}: key bytes printed: {leaked[:2]}"


def test_odd_pem_values_load_or_fail_naming_the_source(keyfiles, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in keyfiles["values"].items():  # type: ignore[attr-defined]
        monkeypatch.setenv(ENV, value)
        if name in VALID:
            assert key_fingerprint(load_private_key().public_key()) == keyfiles["fp"], name
            assert key_fingerprint(load_private_key(value).public_key()) == keyfiles["fp"], name
            continue
        for call in (lambda: load_private_key(), lambda v=value: load_private_key(v)):  # noqa: B023
            with pytest.raises(ConfigError) as err:
                call()
            msg = str(err.value)
            _assert_clean(msg, keyfiles["secrets"], name)  # type: ignore[arg-type]
            assert "\n" not in msg, (name, msg)
    monkeypatch.setenv(ENV, keyfiles["values"]["one-line body"])  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"^\$SECURE_TRAIN_SIGNING_KEY is neither PEM"):
        load_private_key()
    # public keys too: attribute lines are skipped, a private key is refused without echoing it
    assert key_fingerprint(load_public_key(BAG + Path(keyfiles["pub"]).read_text())) == keyfiles["fp"]  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="this is a PRIVATE key"):
        load_public_key(BAG + str(keyfiles["pem"]))


def _ckpt(tmp_path: Path) -> Path:
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "hyper_parameters": {}}, path)
    return path


def _commands(tmp_path: Path, pub: Path, value: str | None) -> dict[str, list[str]]:
    """Every command that loads a key; ``value`` (when given) is passed where a key path goes."""
    ckpt = _ckpt(tmp_path)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"checks:\n  integrity: {{public_key: {pub}}}\n")
    data = tmp_path / "data.tsv"
    data.write_text("sentence\tlabel\ngood\t1\n")
    log = tmp_path / "audit.jsonl"
    log.write_text("")
    key_arg = [] if value is None else ["--signing-key", value]
    return {
        "gate": ["gate", str(ckpt), "--suite", str(suite), *key_arg],
        "approve": ["approve", str(ckpt), "--by", "alice", "--role", "security", "--public-key", str(pub), *key_arg],
        "export": [
            "export",
            str(ckpt),
            "--out",
            str(tmp_path / "o.safetensors"),
            "--public-key",
            str(pub),
            "--allow-ungated",
            *key_arg,
        ],
        "data manifest": [
            "data",
            "manifest",
            str(data),
            "--source",
            "s",
            "--license",
            "l",
            "--quiet",
            "-o",
            str(tmp_path / "m.json"),
            *([] if value is None else ["--key", value]),
        ],
        "verify": ["verify", str(ckpt), "--public-key", value if value is not None else str(pub)],
        "audit verify": ["audit", "verify", str(log), "--public-key", value if value is not None else str(pub)],
        "keygen": ["keygen", "--out", str(tmp_path / "new" / "n.pem")],
        "keygen, missing folder": ["keygen", "--out", str(tmp_path / "missing" / "n.pem")],
    }


@pytest.mark.parametrize("as_argument", [False, True], ids=["env", "argument"])
def test_no_command_prints_key_bytes(
    keyfiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, as_argument: bool
) -> None:
    monkeypatch.setenv("SECURE_TRAIN_KEY_DIR", str(tmp_path / "keydir"))
    (tmp_path / "new").mkdir()
    secrets: list[str] = keyfiles["secrets"]  # type: ignore[assignment]
    ran = 0
    for name, value in keyfiles["values"].items():  # type: ignore[attr-defined]
        if as_argument:
            monkeypatch.delenv(ENV, raising=False)
        else:
            monkeypatch.setenv(ENV, value)
        for command, argv in _commands(tmp_path, Path(keyfiles["pub"]), value if as_argument else None).items():  # type: ignore[arg-type]
            shutil.rmtree(tmp_path / "new", ignore_errors=True)
            (tmp_path / "new").mkdir()
            capsys.readouterr()
            try:
                rc = cli_main(argv)
            except SystemExit as exc:  # argparse usage errors
                rc = int(exc.code or 0)
            out, err = capsys.readouterr()
            _assert_clean(out + err, secrets, f"{command} with {name} ({'arg' if as_argument else 'env'})")
            if rc == 2:
                assert err.count("\n") == 1 and err.startswith("secure-train: error:"), (command, name, err)
            if command == "gate" and name in VALID:
                assert "unsigned" in err, (name, err)  # the key loaded; the unsigned checkpoint is what failed
            ran += 1
    assert ran == len(keyfiles["values"]) * 8  # type: ignore[arg-type]


def test_lightning_cli_signing_config_does_not_print_key(keyfiles, tmp_path: Path, monkeypatch) -> None:
    """``--ckpt_path`` verification with a CheckpointSigning callback loads $SECURE_TRAIN_SIGNING_KEY."""
    config = {
        "ckpt_path": str(_ckpt(tmp_path)),
        "trainer": {"callbacks": [{"class_path": "secure_train.integrity.CheckpointSigning"}]},
    }
    for name, value in keyfiles["values"].items():  # type: ignore[attr-defined]
        monkeypatch.setenv(ENV, value)
        with pytest.raises(Exception) as err:  # noqa: PT011 - a bad key (ConfigError) or the unsigned file
            verify_ckpt_path(config)
        _assert_clean(str(err.value), keyfiles["secrets"], name)  # type: ignore[arg-type]


def test_keygen_output_does_not_print_the_new_key(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SECURE_TRAIN_KEY_DIR", str(tmp_path / "kd"))
    monkeypatch.delenv("SECURE_TRAIN_KEY_PASSPHRASE", raising=False)
    assert cli_main(["keygen", "--name", "project"]) == 0
    out, err = capsys.readouterr()
    _assert_clean(out + err, _secrets((tmp_path / "kd" / "project.pem").read_text()), "keygen")


# -------------------------------------------------------------------------------- keygen
def _git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / ".git").mkdir()  # what git_work_tree looks for (a worktree has a .git file: also found)
    return path


def test_keygen_default_is_per_user_key_dir(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("SECURE_TRAIN_KEY_PASSPHRASE", raising=False)
    monkeypatch.setenv("SECURE_TRAIN_KEY_DIR", str(tmp_path / "home" / "keys"))
    monkeypatch.chdir(_git_repo(tmp_path / "repo"))  # run from inside a repository: nothing lands there
    assert cli_main(["keygen"]) == 0
    kd = tmp_path / "home" / "keys"
    assert stat.S_IMODE(kd.stat().st_mode) == 0o700
    assert stat.S_IMODE((kd / "signing-key.pem").stat().st_mode) == 0o600
    assert (kd / "signing-key.pub").is_file()
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == [".git"]
    assert f"private key: {kd / 'signing-key.pem'}" in capsys.readouterr().out
    # without $SECURE_TRAIN_KEY_DIR: $XDG_CONFIG_HOME/secure-train/keys, public key into the repo allowed
    monkeypatch.delenv("SECURE_TRAIN_KEY_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "repo" / "keys").mkdir()
    assert cli_main(["keygen", "--name", "project", "--public-out", "keys/project.pub"]) == 0
    assert (tmp_path / "xdg" / "secure-train" / "keys" / "project.pem").is_file()
    assert (tmp_path / "repo" / "keys" / "project.pub").is_file()
    assert not (tmp_path / "repo" / "keys" / "project.pem").exists()


def test_keygen_refuses_git_work_tree_without_force(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("SECURE_TRAIN_KEY_PASSPHRASE", raising=False)
    repo = _git_repo(tmp_path / "repo")
    (repo / "sub").mkdir()
    for argv in (["keygen", "--out", str(repo / "signing-key.pem")], ["keygen", "--out", str(repo / "sub" / "k.pem")]):
        capsys.readouterr()
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "inside the git work tree" in err and "--force" in err
    assert not list(repo.rglob("*.pem")) and not list(repo.rglob("*.pub"))
    monkeypatch.setenv("SECURE_TRAIN_KEY_DIR", str(repo / "keys"))  # a key directory inside a repo: same
    assert cli_main(["keygen"]) == 2
    assert "inside the git work tree" in capsys.readouterr().err
    assert cli_main(["keygen", "--out", str(repo / "signing-key.pem"), "--force"]) == 0
    assert stat.S_IMODE((repo / "signing-key.pem").stat().st_mode) == 0o600


def test_keygen_missing_folder_and_bad_name_one_line(tmp_path: Path, capsys) -> None:
    cases = {
        ("keygen", "--out", str(tmp_path / "missing" / "k.pem")): "does not exist",
        (
            "keygen",
            "--out",
            str(tmp_path / "k.pem"),
            "--public-out",
            str(tmp_path / "nope" / "k.pub"),
        ): "does not exist",
        ("keygen", "--name", "../evil"): "plain file name",
    }
    for argv, expect in cases.items():
        capsys.readouterr()
        assert cli_main(list(argv)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expect in err and "Traceback" not in err, err
    assert not (tmp_path / "missing").exists()


def test_repository_ignores_and_tracks_no_private_keys() -> None:
    root = Path(__file__).resolve().parents[2]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    probe = ["signing-key.pem", "keys/project.pem", "x/aes.key", "keys/anything"]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *probe], cwd=root, capture_output=True, text=True, check=False
    ).stdout.split()
    assert ignored == probe
    pub = subprocess.run(
        ["git", "check-ignore", "--no-index", "keys/project.pub"], cwd=root, capture_output=True, check=False
    )
    assert pub.returncode == 1  # public keys may be committed (the shipped suite names keys/project.pub)
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    pem_key = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=]{40,}")
    for name in tracked.decode().split("\0"):
        path = root / name
        if name and path.is_file() and path.stat().st_size < 1_000_000:
            assert not pem_key.search(path.read_bytes()), f"{name} holds a private key"


def test_env_path_value_errors_do_not_echo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"^\$SECURE_TRAIN_SIGNING_KEY is neither") as err:
        load_private_key()
    assert "missing.pem" not in str(err.value)
    monkeypatch.delenv(ENV)
    with pytest.raises(ConfigError, match="private key .*missing.pem: no such file"):
        load_private_key(tmp_path / "missing.pem")  # a path given as an argument is named


def test_recipe_key_path_stays_a_path_in_the_saved_config(keyfiles, tmp_path: Path, monkeypatch, capsys) -> None:
    """jsonargparse replaces a value naming an existing file by the file's contents when the
    annotation's union holds a class: a recipe's ``private_key: PATH`` must not put the PEM
    into the printed or saved config."""
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "signed.yaml"
    recipe.write_text(
        "trainer:\n  callbacks:\n    - class_path: secure_train.integrity.CheckpointSigning\n"
        f"      init_args: {{private_key: {keyfiles['priv']}, public_key: {keyfiles['pub']}}}\n"
        "model: {class_path: secure_train.models.TextClassifier}\n"
        "data: {class_path: secure_train.data.TextClassificationDataModule}\n"
    )
    with pytest.raises(SystemExit):
        cli_main(["fit", "--config", str(recipe), "--print_config"])
    out = capsys.readouterr().out
    assert f"private_key: {keyfiles['priv']}" in out
    assert f"public_key: {keyfiles['pub']}" in out
    _assert_clean(out, keyfiles["secrets"], "print_config")  # type: ignore[arg-type]
