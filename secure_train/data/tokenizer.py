"""Tokenizers: a local pretrained one, or one trained offline on the training split and cached.

Trained tokenizers put their special tokens first, at fixed ids, so that a model built from
a config agrees with them without being told: WordPiece ``[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3
[MASK]=4`` (BERT-style classifiers), byte-level BPE ``<pad>=0 <|endoftext|>=1`` (causal LMs).

The WordPiece vocabulary is built here, not by the ``tokenizers`` Rust trainer: that trainer
breaks frequency ties in hash-map order, so the same corpus gave a different vocabulary in
every process (and models trained on it differed). :func:`wordpiece_vocab` runs the same
merge procedure (pairs of ``##``-continued pieces, most frequent first) with a stable tie-break
(count, then the pair's strings), so the same corpus always gives the same vocabulary; the
``tokenizers`` library still normalizes, pre-tokenizes and encodes.

Example:
    >>> tok = train_tokenizer(["a good film", "a bad film"] * 20, kind="wordpiece", vocab_size=60,
    ...                       cache_dir=None)
    >>> tok.pad_token_id, tok.cls_token_id
    (0, 2)
"""

from __future__ import annotations

import hashlib
import heapq
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from secure_train.core.errors import ConfigError
from secure_train.core.require import require_choice, require_int

__all__ = [
    "BPE_SPECIALS",
    "WORDPIECE_SPECIALS",
    "default_cache_dir",
    "load_tokenizer",
    "train_tokenizer",
    "wordpiece_vocab",
]

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

    if kind == "wordpiece":
        normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
        words = (w for text in texts for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
        tok = Tokenizer(models.WordPiece(vocab=wordpiece_vocab(words, vocab_size), unk_token="[UNK]"))
        tok.normalizer = normalizer
        tok.pre_tokenizer = pre_tokenizer
        tok.decoder = decoders.WordPiece()
    else:
        trainer: trainers.Trainer
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


def wordpiece_vocab(words: Iterable[str], vocab_size: int, *, prefix: str = "##") -> dict[str, int]:
    """A WordPiece vocabulary (token -> id) learned from pre-tokenized ``words``, deterministically.

    Special tokens first (:data:`WORDPIECE_SPECIALS`), then every character (word-initial, and
    ``##``-continued inside a word), then merged pieces in merge order until ``vocab_size``. Each
    step merges the adjacent pair that occurs most often (weighted by word frequency); ties go to
    the pair whose strings sort first. The result depends only on the multiset of words.

    >>> list(wordpiece_vocab(["low", "low", "lower"], 12))[5:]  # ties: "##o" + "##w" before "l" + "##o"
    ['##e', '##o', '##r', '##w', 'l', '##ow', 'low']
    """
    counts = Counter(words)
    uniq = sorted(counts)
    freq = [counts[w] for w in uniq]
    split = [[w[0], *(prefix + c for c in w[1:])] for w in uniq]
    vocab: dict[str, int] = {t: i for i, t in enumerate(WORDPIECE_SPECIALS)}
    for t in sorted({t for sym in split for t in sym}):
        vocab.setdefault(t, len(vocab))
    pairs: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], set[int]] = {}
    for i, sym in enumerate(split):
        for pair in zip(sym, sym[1:], strict=False):
            pairs[pair] += freq[i]
            where.setdefault(pair, set()).add(i)
    heap = [(-n, a, b) for (a, b), n in pairs.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        if pairs.get((a, b), 0) != -neg or -neg <= 0:
            continue  # a stale entry: the pair's count changed since it was pushed
        merged = a + b[len(prefix) :]
        vocab.setdefault(merged, len(vocab))
        changed: set[tuple[str, str]] = set()
        for i in sorted(where.pop((a, b), ())):
            sym = split[i]
            for pair in zip(sym, sym[1:], strict=False):
                pairs[pair] -= freq[i]
                changed.add(pair)
            out, j = [], 0
            while j < len(sym):
                if j + 1 < len(sym) and sym[j] == a and sym[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(sym[j])
                    j += 1
            split[i] = out
            for pair in zip(out, out[1:], strict=False):
                pairs[pair] += freq[i]
                where.setdefault(pair, set()).add(i)
                changed.add(pair)
        for pair in sorted(changed):
            if pairs[pair] > 0:
                heapq.heappush(heap, (-pairs[pair], *pair))
            else:
                pairs.pop(pair, None)
                where.pop(pair, None)
    return vocab


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
