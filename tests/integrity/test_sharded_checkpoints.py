"""Sharded (torch.distributed.checkpoint) checkpoints signed as one artifact: format, tamper suite, links, DCP load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemWriter
from torch.distributed.checkpoint.api import CheckpointException

from secure_train.cli import main as cli_main
from secure_train.core.audit_log import AuditLog, read_events
from secure_train.core.errors import ConfigError, IntegrityError
from secure_train.core.signed_file import signature_path, verify_file, write_signed
from secure_train.integrity import generate_keypair, load_private_key, sharded
from secure_train.integrity.dcp_reader import VerifiedFileSystemReader
from secure_train.integrity.dcp_writer import SigningFileSystemWriter
from secure_train.integrity.sharded import sign_directory, verify_directory

pytestmark = pytest.mark.filterwarnings("ignore:torch.distributed is disabled")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("keys")
    priv, pub = generate_keypair(d / "k.pem", d / "k.pub", passphrase_env=None)
    return Path(priv), Path(pub)


def _state(seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    return {
        "state_dict": {"w": torch.randn(64, 32, generator=g), "b": torch.randn(32, generator=g)},
        "optimizer_0": {"step": torch.tensor(float(seed)), "m": torch.randn(64, 32, generator=g)},
    }


def _zeros_like(state: dict[str, Any]) -> dict[str, Any]:
    return {k: {kk: torch.zeros_like(v) for kk, v in d.items()} for k, d in state.items()}


def _save(path: Path, seed: int, key_path: Path, hash_type: str = "blake3") -> Path:
    """A DCP checkpoint of several shard files (one per tensor), with a meta.pt as Lightning writes, signed."""
    dcp.save(_state(seed), storage_writer=FileSystemWriter(path, single_file_per_rank=False))
    torch.save({"global_step": seed, "epoch": 0}, path / "meta.pt")
    sign_directory(path, load_private_key(key_path), provenance={"global_step": seed}, hash_type=hash_type)
    return path


def _shards(path: Path) -> list[Path]:
    return sorted(path.glob("*.distcp"))


def _flip(path: Path, offset: int = 100) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


@pytest.mark.parametrize("hash_type", ["blake3", "sha256"])
def test_signed_directory_verifies_and_is_model_signing_compatible(tmp_path, keys, hash_type):
    priv, pub = keys
    ckpt = _save(tmp_path / "step=3.ckpt", 3, priv, hash_type)
    assert len(_shards(ckpt)) >= 3  # really sharded: one file per tensor
    signed = verify_directory(ckpt, pub)
    assert signed.hash_type == hash_type
    assert set(signed.digests) == {p.name for p in ckpt.iterdir()}
    assert signed.provenance == {"global_step": 3}
    assert signed.size == sum(p.stat().st_size for p in ckpt.iterdir())

    model_signing = pytest.importorskip("model_signing")
    config = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub)
    config.verify(ckpt, signature_path(ckpt))  # the standard tool accepts our sidecar
    _flip(_shards(ckpt)[0])
    with pytest.raises(ValueError, match="Hash mismatch"):
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(ckpt, signature_path(ckpt))


def test_plain_model_signing_directory_signature_is_accepted(tmp_path, keys):
    """A directory signed by ``model_signing sign key`` (no secure_train extension) verifies with our verifier."""
    model_signing = pytest.importorskip("model_signing")
    priv, pub = keys
    ckpt = tmp_path / "m"
    dcp.save(_state(1), checkpoint_id=ckpt)
    model_signing.signing.Config().use_elliptic_key_signer(private_key=priv).sign(ckpt, signature_path(ckpt))
    signed = verify_directory(ckpt, pub)
    assert signed.sizes == {} and set(signed.digests) == {".metadata", "__0_0.distcp"}
    _flip(ckpt / "__0_0.distcp")
    with pytest.raises(IntegrityError, match="__0_0.distcp: content does not match"):
        verify_directory(ckpt, pub)


def _tamper(case: str, ckpt: Path, other: Path) -> str:
    """Apply one attack to ``ckpt``; return the file name the refusal must name."""
    shard = _shards(ckpt)[1]
    if case == "flip":
        _flip(shard)
    elif case == "drop":
        shard.unlink()
    elif case == "add":
        (ckpt / "__9_0.distcp").write_bytes(shard.read_bytes())
        return "__9_0.distcp"
    elif case == "add_git":  # model_signing ignores .git names; a checkpoint must not
        (ckpt / ".gitignore").write_text("*\n")
        return ".gitignore"
    elif case == "swap":  # the same shard from another (validly signed) checkpoint
        shutil.copyfile(other / shard.name, shard)
    elif case == "truncate":
        with shard.open("r+b") as fh:
            fh.truncate(shard.stat().st_size - 1)
    elif case == "metadata":
        _flip(ckpt / ".metadata", 20)
        return ".metadata"
    elif case == "meta_pt":
        _flip(ckpt / "meta.pt", 60)
        return "meta.pt"
    elif case == "symlink_inside":
        shard.unlink()
        os.symlink(other / shard.name, shard)
    elif case == "sidecar_swap":  # the other checkpoint's signature, renamed over this one's
        shutil.copyfile(signature_path(other), signature_path(ckpt))
        return ckpt.name
    elif case == "unsigned":
        signature_path(ckpt).unlink()
        return ckpt.name
    return shard.name


TAMPER = ["flip", "drop", "add", "add_git", "swap", "truncate", "metadata", "meta_pt", "symlink_inside"]


@pytest.mark.parametrize("case", [*TAMPER, "sidecar_swap", "unsigned"])
def test_tamper_suite_refused_with_one_line_naming_the_file(tmp_path, keys, case):
    priv, pub = keys
    other = _save(tmp_path / "b" / "step=3.ckpt", 4, priv)  # same name, other weights
    ckpt = _save(tmp_path / "a" / "step=3.ckpt", 3, priv)
    verify_directory(ckpt, pub)
    named = _tamper(case, ckpt, other)
    with pytest.raises(IntegrityError) as info:
        verify_directory(ckpt, pub)
    message = str(info.value)
    assert "\n" not in message and named in message, message
    state = _zeros_like(_state(3))
    with pytest.raises(IntegrityError):  # nothing is read: the reader refuses at construction
        VerifiedFileSystemReader(ckpt, pub)
    assert all(not t.any() for d in state.values() for t in d.values())
    assert cli_main(["verify", str(ckpt), "--public-key", str(pub)]) == 1


def test_renamed_directory_and_other_key_refused(tmp_path, keys):
    priv, pub = keys
    ckpt = _save(tmp_path / "step=3.ckpt", 3, priv)
    moved = tmp_path / "step=9.ckpt"
    ckpt.rename(moved)
    signature_path(ckpt).rename(signature_path(moved))
    with pytest.raises(IntegrityError, match=r"named 'step=3.ckpt', not 'step=9.ckpt' \(renamed\)"):
        verify_directory(moved, pub)
    _, other_pub = generate_keypair(tmp_path / "o.pem", tmp_path / "o.pub", passphrase_env=None)
    moved.rename(ckpt)
    signature_path(moved).rename(signature_path(ckpt))
    with pytest.raises(IntegrityError, match="signed by another key"):
        verify_directory(ckpt, other_pub)


def test_verified_reader_loads_and_never_reads_a_file_swapped_after_the_check(tmp_path, keys):
    priv, pub = keys
    ckpt = _save(tmp_path / "step=3.ckpt", 3, priv)
    evil = _save(tmp_path / "evil" / "step=3.ckpt", 7, priv)
    state = _zeros_like(_state(3))
    with VerifiedFileSystemReader(ckpt, pub) as reader:
        assert reader.signed.provenance["global_step"] == 3
        for shard in _shards(ckpt):  # replace every shard on disk after the check, before DCP reads
            tmp = shard.with_name(shard.name + ".new")
            shutil.copyfile(evil / shard.name, tmp)
            os.replace(tmp, shard)
        dcp.load(state, storage_reader=reader)
    expected = _state(3)
    assert torch.equal(state["state_dict"]["w"], expected["state_dict"]["w"])
    assert torch.equal(state["optimizer_0"]["m"], expected["optimizer_0"]["m"])
    with pytest.raises(IntegrityError):  # and the swapped directory no longer verifies
        verify_directory(ckpt, pub)


def _count_disk_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files hashed by reading them from disk from now on (names relative to the directory)."""
    read: list[str] = []
    digest = sharded._OpenFiles.digest

    def counting(self: Any, rel: str, hash_type: str) -> str:
        read.append(rel)
        return digest(self, rel, hash_type)

    monkeypatch.setattr(sharded._OpenFiles, "digest", counting)
    return read


@pytest.mark.parametrize("hash_type", ["blake3", "sha256"])
def test_signing_writer_hashes_while_writing_and_verifies_like_sign_directory(tmp_path, keys, hash_type, monkeypatch):
    priv, pub = keys
    ckpt = tmp_path / "step=4.ckpt"
    ckpt.mkdir()
    torch.save({"global_step": 4}, ckpt / "meta.pt")  # a file DCP does not write (Lightning's): hashed from disk
    read = _count_disk_hashes(monkeypatch)
    writer = SigningFileSystemWriter(
        ckpt, load_private_key(priv), provenance={"global_step": 4}, hash_type=hash_type,
        single_file_per_rank=False, thread_count=2,  # several files, written by two threads
    )
    dcp.save(_state(4), storage_writer=writer)
    assert read == ["meta.pt"]  # no DCP file read back
    assert writer.signed is not None and len(writer.signed.digests) == len(_shards(ckpt)) + 2 > 4
    files = sharded._OpenFiles(ckpt)
    try:  # the digests taken while writing are those of the files on disk
        assert files.digests(hash_type) == dict(writer.signed.digests)
    finally:
        files.close()
    signed = verify_directory(ckpt, pub)
    assert signed.hash_type == hash_type and signed.provenance == {"global_step": 4}
    state = _zeros_like(_state(4))
    with VerifiedFileSystemReader(ckpt, pub) as reader:
        dcp.load(state, storage_reader=reader)
    assert torch.equal(state["optimizer_0"]["m"], _state(4)["optimizer_0"]["m"])


def test_signing_writer_signs_the_bytes_it_wrote_not_a_file_changed_before_signing(tmp_path, keys):
    priv, pub = keys

    class Tampered(SigningFileSystemWriter):
        def finish(self, metadata: Any, results: Any) -> None:
            _flip(_shards(Path(self.path))[0], 40)  # between the shard's write and the signature
            super().finish(metadata, results)

    ckpt = tmp_path / "step=5.ckpt"
    dcp.save(_state(5), storage_writer=Tampered(ckpt, load_private_key(priv), single_file_per_rank=False))
    with pytest.raises(IntegrityError, match=r"__0_0\.distcp: content does not match the signature"):
        verify_directory(ckpt, pub)


def test_signing_writer_needs_a_key_and_a_known_hash(tmp_path, keys):
    with pytest.raises(ConfigError, match="hash_type"):
        SigningFileSystemWriter(tmp_path / "x", None, hash_type="md5")
    (tmp_path / "d").mkdir()
    with pytest.raises(ConfigError, match="sign_directory: hash_type must be one of"):
        sign_directory(tmp_path / "d", keys[0], hash_type="md5")
    with pytest.raises(CheckpointException) as info:  # DCP wraps what a rank raised
        dcp.save(_state(1), storage_writer=SigningFileSystemWriter(tmp_path / "y"))
    (error, _), *_ = info.value.failures.values()
    assert isinstance(error, ConfigError) and "needs the private key" in str(error)
    assert not signature_path(tmp_path / "y").exists()


def test_save_last_link_verifies_through_its_target_and_other_links_are_refused(tmp_path, keys):
    priv, pub = keys
    folder = tmp_path / "checkpoints"
    ckpt = _save(folder / "epoch=0-step=3.ckpt", 3, priv)
    link = folder / "last.ckpt"
    os.symlink(os.path.relpath(ckpt, folder), link)  # exactly what ModelCheckpoint._link_checkpoint does
    assert verify_directory(link, pub).name == "epoch=0-step=3.ckpt"
    assert cli_main(["verify", str(link), "--public-key", str(pub)]) == 0
    state = _zeros_like(_state(3))
    with VerifiedFileSystemReader(link, pub) as reader:
        dcp.load(state, storage_reader=reader)
    assert torch.equal(state["state_dict"]["b"], _state(3)["state_dict"]["b"])

    # a file checkpoint: symbolic link and hard link verify through the signed name
    key = load_private_key(priv)
    write_signed(b"weights" * 100, folder / "epoch=1-step=6.ckpt", key, provenance={"global_step": 6})
    for made in (os.symlink, os.link):
        link.unlink()
        made("epoch=1-step=6.ckpt" if made is os.symlink else folder / "epoch=1-step=6.ckpt", link)
        assert verify_file(link, pub).provenance == {"global_step": 6}

    # a link pointing elsewhere: another folder, an absolute path, a link to a link
    elsewhere = _save(tmp_path / "elsewhere" / "epoch=0-step=3.ckpt", 5, priv)
    for target in (os.path.relpath(elsewhere, folder), str(elsewhere)):
        link.unlink()
        os.symlink(target, link)
        with pytest.raises(IntegrityError, match="outside its folder: refused") as info:
            verify_directory(link, pub)
        assert "last.ckpt" in str(info.value) and "\n" not in str(info.value)
        assert cli_main(["verify", str(link), "--public-key", str(pub)]) == 1
    (folder / "hop.ckpt").symlink_to("epoch=0-step=3.ckpt")
    link.unlink()
    os.symlink("hop.ckpt", link)
    with pytest.raises(IntegrityError, match="itself a link: refused"):
        verify_directory(link, pub)


def test_signed_checkpoint_io_signs_verifies_audits_and_removes_directories(tmp_path, keys):
    from secure_train.integrity.checkpoint_io import SignedCheckpointIO  # imports Lightning

    priv, pub = keys
    io_plugin = SignedCheckpointIO(private_key=priv, public_key=pub, sign_audit_head=False)
    log = AuditLog(tmp_path / "audit.jsonl")
    io_plugin._audit_log = lambda: log  # type: ignore[method-assign]  # no Trainer in this unit test
    ckpt = tmp_path / "step=2.ckpt"
    dcp.save(_state(2), checkpoint_id=ckpt)
    signed = io_plugin.sign_directory(ckpt, {"global_step": 2, "epoch": 0})
    assert signed.provenance["global_step"] == 2
    assert io_plugin.verify(ckpt) is not None
    _flip(ckpt / "__0_0.distcp")
    with pytest.raises(IntegrityError, match="__0_0.distcp"):
        io_plugin.verify(ckpt)
    events = [(e["type"], e["payload"].get("kind")) for e in read_events(log.path)]
    assert events == [
        ("checkpoint.signed", "directory"),
        ("checkpoint.verified", "directory"),
        ("checkpoint.refused", None),
    ]
    io_plugin.remove_checkpoint(ckpt)
    assert not ckpt.exists() and not signature_path(ckpt).exists()

    encrypted = SignedCheckpointIO(private_key=priv, encryption_key=os.urandom(32))
    dcp.save(_state(2), checkpoint_id=ckpt)
    with pytest.raises(ConfigError, match="plaintext"):
        encrypted.sign_directory(ckpt)


def test_cli_verify_directory(tmp_path, keys, capsys):
    priv, pub = keys
    ckpt = _save(tmp_path / "step=3.ckpt", 3, priv)
    assert cli_main(["verify", str(ckpt), "--public-key", str(pub)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK: {ckpt}: directory of ") and "global_step 3" in out
    assert cli_main(["verify", str(ckpt), "--public-key", str(pub), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "directory" and doc["digests"].keys() == verify_directory(ckpt, pub).digests.keys()
    (ckpt / "__0_0.distcp").unlink()
    assert cli_main(["verify", str(ckpt), "--public-key", str(pub)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("FAILED: ") and "__0_0.distcp" in err[0] and "dropped" in err[0]


# -- two processes (gloo): torch.distributed.checkpoint save, sign, verified load ----------------


def _dcp_worker(rank: int, root: str, priv: str, pub: str, port: int, writer: bool) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    report: dict[str, Any] = {}
    try:
        ckpt = Path(root) / "step=5.ckpt"
        state = {"shared": torch.arange(8.0), f"rank{rank}": torch.full((256,), float(rank + 1))}
        read: list[str] = []
        digest = sharded._OpenFiles.digest
        sharded._OpenFiles.digest = lambda self, rel, h: read.append(rel) or digest(self, rel, h)  # type: ignore[method-assign]
        if writer:  # every rank hashes its shard while writing it; rank 0 collects the digests and signs
            key = load_private_key(priv) if rank == 0 else None
            dcp.save(state, storage_writer=SigningFileSystemWriter(ckpt, key, provenance={"global_step": 5}))
        else:
            dcp.save(state, checkpoint_id=ckpt)
            if rank == 0:  # what the hooked strategy does: global rank zero signs the finished directory
                sign_directory(ckpt, load_private_key(priv), provenance={"global_step": 5})
        report["hashed_from_disk"] = sorted(read)
        sharded._OpenFiles.digest = digest  # type: ignore[method-assign]
        dist.barrier()
        loaded = {"shared": torch.zeros(8), f"rank{rank}": torch.zeros(256)}
        with VerifiedFileSystemReader(ckpt, pub) as reader:
            dcp.load(loaded, storage_reader=reader)
        report["loaded"] = bool(torch.equal(loaded[f"rank{rank}"], state[f"rank{rank}"]))
        report["files"] = sorted(reader.signed.digests)
        dist.barrier()
        if rank == 0:
            _flip(ckpt / "__1_0.distcp", 40)  # tamper with the other rank's shard
        dist.barrier()
        try:
            VerifiedFileSystemReader(ckpt, pub)
            report["refused"] = None
        except IntegrityError as err:
            report["refused"] = str(err)
    finally:
        (Path(root) / f"rank{rank}.json").write_text(json.dumps(report))
        dist.destroy_process_group()


@pytest.mark.ddp
@pytest.mark.parametrize("writer", [False, True], ids=["sign_directory", "SigningFileSystemWriter"])
def test_two_process_gloo_dcp_save_sign_verified_load_and_tamper(tmp_path, keys, writer):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    priv, pub = keys
    mp.spawn(_dcp_worker, args=(str(tmp_path), str(priv), str(pub), port, writer), nprocs=2, join=True)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for report in reports:
        assert report["loaded"] is True
        assert report["files"] == [".metadata", "__0_0.distcp", "__1_0.distcp"]
        assert report["refused"].endswith("__1_0.distcp: content does not match the signature of step=5.ckpt")
    files = [".metadata", "__0_0.distcp", "__1_0.distcp"]
    assert reports[0]["hashed_from_disk"] == ([] if writer else files)  # the writer reads nothing back
    assert reports[1]["hashed_from_disk"] == []


# -- Lightning ModelParallelStrategy (FSDP2) on 2 CPU processes --------------------------------

_LIGHTNING_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import torch, lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.strategies import ModelParallelStrategy
    from torch.distributed._composable.fsdp import fully_shard
    from secure_train.monitors import AuditTrail
    from secure_train.integrity import CheckpointSigning, IntegrityError

    root, priv, pub = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

    class M(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
        def configure_model(self):
            for layer in self.net:
                if isinstance(layer, torch.nn.Linear):
                    fully_shard(layer)
            fully_shard(self)
        def training_step(self, batch, i):
            return self.net(batch[0]).pow(2).mean()
        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.01)

    def trainer(steps, name):
        return pl.Trainer(
            accelerator="cpu", devices=2, max_steps=steps, logger=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=root,
            strategy=ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1),
            callbacks=[
                AuditTrail(root / f"{name}.jsonl"),
                CheckpointSigning(private_key=priv, public_key=pub, passphrase_env=None),
                ModelCheckpoint(dirpath=root / "ckpt", save_last="link", every_n_train_steps=2, save_top_k=1),
            ],
        )

    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 16)), batch_size=4)
    first = trainer(4, "fit")
    first.fit(M(), loader)
    resumed = trainer(6, "resume")
    resumed.fit(M(), loader, ckpt_path=str(root / "ckpt" / "last.ckpt"))
    result = {"resumed_step": resumed.global_step}
    if resumed.global_rank == 0:
        target = os.readlink(root / "ckpt" / "last.ckpt")
        shard = sorted((root / "ckpt" / target).glob("__1_*.distcp"))[0]
        data = bytearray(shard.read_bytes()); data[50] ^= 1; shard.write_bytes(bytes(data))
    resumed.strategy.barrier()
    try:
        trainer(8, "tampered").fit(M(), loader, ckpt_path=str(root / "ckpt" / "last.ckpt"))
        result["refused"] = None
    except IntegrityError as err:
        result["refused"] = str(err)
    (root / f"rank{resumed.global_rank}.json").write_text(json.dumps(result))
    """
)


@pytest.mark.slow
@pytest.mark.ddp
def test_lightning_model_parallel_strategy_cpu_signs_resumes_and_refuses(tmp_path, keys):
    """ModelParallelStrategy (FSDP2, gloo) on 2 CPU processes: sharded saves signed, last.ckpt link verified."""
    priv, pub = keys
    script = tmp_path / "train_sharded.py"
    script.write_text(_LIGHTNING_SCRIPT)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(priv), str(pub)],
        capture_output=True,
        text=True,
        timeout=500,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "ckpt"
    link = folder / "last.ckpt"
    assert link.is_symlink() and (folder / os.readlink(link)).is_dir()
    final = folder / os.readlink(link)
    assert signature_path(final).is_file() and (final / "meta.pt").is_file()
    assert [p.name for p in folder.iterdir() if p.name.endswith(".sig")] == [final.name + ".sig"]  # top-1 rotation
    fit_events = read_events(tmp_path / "fit.jsonl")
    signed = [e["payload"] for e in fit_events if e["type"] == "checkpoint.signed"]
    assert [s["kind"] for s in signed] == ["directory", "directory"] and signed[-1]["global_step"] == 4
    resume_events = read_events(tmp_path / "resume.jsonl")
    verified = [e["payload"] for e in resume_events if e["type"] == "checkpoint.verified"]
    assert verified and verified[0]["kind"] == "directory" and verified[0]["global_step"] == 4
    tampered = [e["type"] for e in read_events(tmp_path / "tampered.jsonl")]
    assert "checkpoint.refused" in tampered
    for rank in range(2):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["resumed_step"] == 6
        assert result["refused"] and "__1_0.distcp: content does not match the signature" in result["refused"]


def test_cli_snapshot_of_a_last_ckpt_link_verifies_its_target(tmp_path, keys, monkeypatch):
    """``--ckpt_path last.ckpt`` made by ``save_last="link"``: the CLI's private snapshot is of the signed target."""
    from secure_train.integrity.cli_support import snapshot_ckpt_path

    priv, pub = keys
    monkeypatch.setenv("SECURE_TRAIN_SIGNING_KEY", str(priv))
    folder = tmp_path / "checkpoints"
    write_signed(b"genuine bytes", folder / "epoch=0-step=4.ckpt", load_private_key(priv))
    link = folder / "last.ckpt"
    os.symlink("epoch=0-step=4.ckpt", link)
    config = {
        "ckpt_path": str(link),
        "trainer": {"callbacks": [{"class_path": "secure_train.integrity.CheckpointSigning"}]},
    }
    snap = snapshot_ckpt_path(config)
    assert snap is not None and snap.path.name == "epoch=0-step=4.ckpt" and snap.path.read_bytes() == b"genuine bytes"
    verify_file(snap.path, pub)
    snap.cleanup()
    link.unlink()
    os.symlink(os.path.join("..", "elsewhere.ckpt"), link)
    (tmp_path / "elsewhere.ckpt").write_bytes(b"x")
    with pytest.raises(IntegrityError, match="outside its folder"):
        snapshot_ckpt_path(config)


class _DirectoryStrategy:
    """Stands in for FSDP / ModelParallel: saves and loads a DCP directory itself, past CheckpointIO."""

    is_global_zero = True

    def __init__(self) -> None:
        self.loads = 0

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath: Any, storage_options: Any = None) -> None:
        dcp.save({"state_dict": checkpoint["state_dict"]}, checkpoint_id=filepath)
        torch.save({"global_step": checkpoint["global_step"]}, Path(filepath) / "meta.pt")

    def load_checkpoint(self, checkpoint_path: Any, weights_only: bool | None = None) -> dict[str, Any]:
        self.loads += 1
        state = {"state_dict": _zeros_like(_state(0))["state_dict"]}
        dcp.load(state, checkpoint_id=checkpoint_path)
        return state


@pytest.mark.parametrize("async_save", [False, True])
def test_hooked_strategy_signs_directories_and_verifies_before_its_load(tmp_path, keys, async_save):
    from secure_train.integrity.checkpoint_io import SignedCheckpointIO  # imports Lightning

    priv, pub = keys
    io_plugin = SignedCheckpointIO(private_key=priv, public_key=pub, async_save=async_save, sign_audit_head=False)
    strategy = _DirectoryStrategy()
    io_plugin._hook_strategy(strategy)  # type: ignore[arg-type]  # what bind(trainer) does
    io_plugin._hook_strategy(strategy)  # type: ignore[arg-type]  # idempotent
    ckpt = tmp_path / "epoch=0-step=7.ckpt"
    strategy.save_checkpoint({"state_dict": _state(7)["state_dict"], "global_step": 7}, ckpt)
    io_plugin.wait()
    assert verify_directory(ckpt, pub).provenance["global_step"] == 7
    loaded = strategy.load_checkpoint(ckpt)
    assert torch.equal(loaded["state_dict"]["w"], _state(7)["state_dict"]["w"]) and strategy.loads == 1
    _flip(ckpt / "__0_0.distcp")
    with pytest.raises(IntegrityError, match="__0_0.distcp: content does not match"):
        strategy.load_checkpoint(ckpt)
    assert strategy.loads == 1  # refused before the strategy read a shard
    single = tmp_path / "full.ckpt"  # a file the strategy reads itself is verified first too
    single.write_bytes(b"not signed")
    with pytest.raises(IntegrityError, match="unsigned"):
        strategy.load_checkpoint(single)
    io_plugin.teardown()


@pytest.mark.slow
def test_lightning_save_last_link_file_checkpoint_resumes_verified(tmp_path, keys):
    """File checkpoints: ``ModelCheckpoint(save_last="link")``'s ``last.ckpt`` resumes through its target."""
    from conftest import quiet_trainer, tiny_classification_data, tiny_classifier
    from lightning.pytorch.callbacks import ModelCheckpoint

    from secure_train.integrity import CheckpointSigning
    from secure_train.monitors import AuditTrail

    priv, pub = keys
    folder = tmp_path / "ckpt"

    def trainer(steps: int, name: str) -> Any:
        return quiet_trainer(
            tmp_path,
            max_steps=steps,
            limit_val_batches=0,
            enable_checkpointing=True,
            callbacks=[
                AuditTrail(tmp_path / f"{name}.jsonl"),
                CheckpointSigning(private_key=priv, public_key=pub, passphrase_env=None),
                ModelCheckpoint(dirpath=folder, save_last="link", every_n_train_steps=2),
            ],
        )

    trainer(2, "fit").fit(tiny_classifier(), tiny_classification_data())
    link = folder / "last.ckpt"
    assert link.is_symlink() and not signature_path(link).exists()
    trainer(4, "resume").fit(tiny_classifier(), tiny_classification_data(), ckpt_path=str(link))
    verified = [e["payload"] for e in read_events(tmp_path / "resume.jsonl") if e["type"] == "checkpoint.verified"]
    assert verified and verified[0]["global_step"] == 2
    elsewhere = tmp_path / "other" / os.readlink(link)  # the same name, signed, in another folder
    elsewhere.parent.mkdir()
    shutil.copyfile(folder / os.readlink(link), elsewhere)
    shutil.copyfile(signature_path(folder / os.readlink(link)), signature_path(elsewhere))
    link.unlink()
    os.symlink(os.path.relpath(elsewhere, folder), link)
    with pytest.raises(IntegrityError, match="last.ckpt: is a link to .*outside its folder: refused"):
        trainer(6, "redirected").fit(tiny_classifier(), tiny_classification_data(), ckpt_path=str(link))
    refused = [e["type"] for e in read_events(tmp_path / "redirected.jsonl")]
    assert "checkpoint.refused" in refused


def test_fifo_inside_is_refused_without_blocking(tmp_path, keys):
    priv, pub = keys
    ckpt = _save(tmp_path / "step=3.ckpt", 3, priv)
    os.mkfifo(ckpt / "__5_0.distcp")
    with pytest.raises(IntegrityError, match=r"__5_0.distcp: is not a regular file: refused"):
        verify_directory(ckpt, pub)


def test_link_to_signed_file_is_verified_even_when_signatures_are_optional(tmp_path, keys):
    from secure_train.integrity.loading import load_verified_bytes

    priv, pub = keys
    write_signed(b"genuine", tmp_path / "epoch=0-step=2.ckpt", load_private_key(priv))
    os.symlink("epoch=0-step=2.ckpt", tmp_path / "last.ckpt")
    data, signed = load_verified_bytes(tmp_path / "last.ckpt", pub, require_signature=False)
    assert data == b"genuine" and signed is not None  # verified through the target, not loaded as unsigned
    (tmp_path / "epoch=0-step=2.ckpt").write_bytes(b"tampere")
    with pytest.raises(IntegrityError, match="does not match"):
        load_verified_bytes(tmp_path / "last.ckpt", pub, require_signature=False)
