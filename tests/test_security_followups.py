"""Security follow-ups: no remote code from a model folder, signed manifests at the gate,
audit heads re-signed after gate/export/approve, verdicts filed by the library path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secure_train.errors import ConfigError

_EVIL = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\nraise SystemExit('remote code executed')\n"


def _model_folder(tmp_path: Path, model_type: str) -> tuple[Path, Path]:
    """A saved tiny BERT whose config.json names custom code (auto_map) that would leave a marker."""
    from transformers import BertConfig, BertForSequenceClassification

    folder, marker = tmp_path / "model", tmp_path / "MARKER"
    cfg = BertConfig(vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    conf = json.loads((folder / "config.json").read_text())
    conf["model_type"] = model_type
    conf["auto_map"] = {
        "AutoConfig": "evil.EvilConfig",
        "AutoModel": "evil.EvilModel",
        "AutoModelForSequenceClassification": "evil.EvilModel",
    }
    (folder / "config.json").write_text(json.dumps(conf))
    (folder / "evil.py").write_text(_EVIL.format(marker=str(marker)))
    return folder, marker


def test_auto_map_of_a_known_model_type_is_ignored(tmp_path: Path, monkeypatch) -> None:
    from secure_train.models import TextClassifier

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder, marker = _model_folder(tmp_path, "bert")
    model = TextClassifier(pretrained=str(folder), num_labels=2)
    assert type(model.model).__name__ == "BertForSequenceClassification"  # the library's class, not evil.py's
    assert not marker.exists()


def test_auto_map_without_a_known_model_type_is_refused(tmp_path: Path, monkeypatch) -> None:
    from secure_train.models import TextClassifier

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder, marker = _model_folder(tmp_path, "evil-model")
    with pytest.raises(ConfigError, match="cannot load a model"):
        TextClassifier(pretrained=str(folder), num_labels=2)
    assert not marker.exists()
