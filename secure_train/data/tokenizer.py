"""Tokenizers: a local pretrained one, or one trained offline on the training split and cached.

Trained tokenizers put their special tokens first, at fixed ids, so that a model built from
a config agrees with them without being told: WordPiece ``[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3
[MASK]=4`` (BERT-style classifiers), byte-level BPE ``<pad>=0 <|endoftext|>=1`` (causal LMs).

Example:
    >>> tok = train_tokenizer(["a good film", "a bad film"] * 20, kind="wordpiece", vocab_size=60,
    ...                       cache_dir=None)
    >>> tok.pad_token_id, tok.cls_token_id
    (0, 2)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from secure_train.core.errors import ConfigError
from secure_train.core.require import require_choice, require_int

__all__ = ["BPE_SPECIALS", "WORDPIECE_SPECIALS", "default_cache_dir", "load_tokenizer", "train_tokenizer"]

WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BPE_SPECIALS = ["<pad>", "<|endoftext|>"]


def default_cache_dir() -> Path:
    """``$SECURE_TRAIN_CACHE`` or ``~/.cache/secure_train``."""
    return Path(os.environ.get("SECURE_TRAIN_CACHE", Path.home() / ".cache" / "secure_train"))


def load_tokenizer(path: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """A pretrained tokenizer from a local directory (or a hub name when online)."""
    try:
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load a tokenizer from {path!s}: {err}".splitlines()[0]) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def train_tokenizer(
    texts: Sequence[str],
    *,
    kind: str = "wordpiece",
    vocab_size: int = 8192,
    cache_dir: str | os.PathLike[str] | None = "default",
) -> PreTrainedTokenizerFast:
    """Train a WordPiece (``kind="wordpiece"``) or byte-level BPE (``"bpe"``) tokenizer on ``texts``.

    The result is cached under ``cache_dir`` keyed by the SHA-256 of the texts and settings;
    pass ``cache_dir=None`` to skip the cache.
    """
    require_choice("train_tokenizer", "kind", kind, ("wordpiece", "bpe"))
    require_int("train_tokenizer", "vocab_size", vocab_size, minimum=32)
    digest = hashlib.sha256(f"{kind}:{vocab_size}:".encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    cache: Path | None = None
    if cache_dir is not None:
        root = default_cache_dir() if cache_dir == "default" else Path(cache_dir)
        cache = root / "tokenizers" / digest.hexdigest()[:32]
        if (cache / "tokenizer.json").is_file():
            return _wrap(str(cache / "tokenizer.json"), kind)

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    trainer: trainers.Trainer
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=WORDPIECE_SPECIALS, show_progress=False
        )
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=BPE_SPECIALS,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    tok.train_from_iterator(texts, trainer=trainer)
    if kind == "wordpiece":
        from tokenizers.processors import TemplateProcessing

        tok.post_processor = TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
        )
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f"tokenizer.json.{os.getpid()}.tmp"
        tok.save(str(tmp))
        os.replace(tmp, cache / "tokenizer.json")
        return _wrap(str(cache / "tokenizer.json"), kind)
    return _wrap_object(tok, kind)


def _wrap(file: str, kind: str) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer

    return _wrap_object(Tokenizer.from_file(file), kind)


def _wrap_object(tok: object, kind: str) -> PreTrainedTokenizerFast:
    if kind == "wordpiece":
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            pad_token="[PAD]",
            unk_token="[UNK]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token="[MASK]",
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
