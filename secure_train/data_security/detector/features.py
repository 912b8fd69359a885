"""Hashed word and character n-grams over fixed-size windows of a text.

A text is cut into windows of ``window`` words (stride ``window // 2``); each window becomes a
bag of hashed features (word 1-2 grams, character 3-5 grams inside ``<word>`` boundaries) with
weights normalised to unit L2 norm. The detector scores every window and keeps the maximum, so
the length of a text is not itself a feature: a long benign text is many benign windows, and an
attack is flagged by its worst window wherever it sits.

With ``decode``, every readable re-spelling the injection scanner decodes
(:func:`secure_train.data_security.scanners.normalize.decodings`: base64 / hex / percent / HTML
escapes, tag characters, letters split by spaces or dots, morse, reversed text) adds its own
windows, so an encoded attack is scored on what it says. Hyphen and underscore re-spellings are
left out: the plain windows already read those words (and they are common in benign text).

Hashing is ``blake2b`` (stable across processes and Python versions, unlike ``hash()``), so a
saved detector scores the same texts the same way anywhere.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from secure_train.core.errors import ConfigError
from secure_train.core.require import require_int

__all__ = ["NgramHasher"]

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_DECODED = frozenset({"base64", "hex", "percent", "html", "tags", "despaced", "morse", "reversed"})
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff\U000e0000-\U000e007f]")


@functools.lru_cache(maxsize=2**20)
def _bucket(feature: str, dim: int) -> int:
    digest = hashlib.blake2b(feature.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % dim


@functools.lru_cache(maxsize=2**17)
def _char_buckets(word: str, lo: int, hi: int, dim: int) -> tuple[int, ...]:
    padded = f"<{word}>"
    return tuple(_bucket("c" + padded[i : i + n], dim) for n in range(lo, hi + 1) for i in range(len(padded) - n + 1))


@dataclass(frozen=True)
class NgramHasher:
    """Text -> windows of hashed n-gram features (indices, weights, window -> text offsets).

    Args:
        dim: number of hash buckets (a power of two keeps the modulo unbiased).
        window: words per window; ``stride`` is half of it.
        word_ngrams: longest word n-gram.
        char_ngrams: ``(min, max)`` character n-gram lengths inside a word.
        max_windows: windows kept per text (evenly spaced beyond that), bounding the cost; as
            many again for the decoded views.
        decode: also window the text's decoded views (off in detectors saved before it existed).

    Example:
        >>> h = NgramHasher(dim=1024, window=8)
        >>> idx, w, bags, owner = h.featurize(["ignore previous instructions", "a " * 20])
        >>> owner.tolist()  # the second text has 20 words: windows at words 0, 4, 8, 12
        [0, 1, 1, 1, 1]
        >>> round(float(w[: bags[1]].pow(2).sum()), 6)
        1.0
    """

    dim: int = 2**18
    window: int = 48
    word_ngrams: int = 2
    char_ngrams: tuple[int, int] = (3, 5)
    max_windows: int = 64
    decode: bool = False

    def __post_init__(self) -> None:
        require_int(self, "dim", self.dim, minimum=16)
        require_int(self, "window", self.window, minimum=2)
        require_int(self, "word_ngrams", self.word_ngrams, minimum=1)
        require_int(self, "max_windows", self.max_windows, minimum=1)
        if not isinstance(self.decode, bool):
            raise ConfigError(f"NgramHasher: decode must be true or false, got {self.decode!r}")
        pair = self.char_ngrams
        ok = isinstance(pair, (tuple, list)) and len(pair) == 2
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in pair) and 1 <= pair[0] <= pair[1]
        if not ok:
            raise ConfigError(f"NgramHasher: char_ngrams must be (min, max) with 1 <= min <= max, got {pair!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["char_ngrams"] = list(self.char_ngrams)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NgramHasher:
        try:
            return cls(**{**d, "char_ngrams": tuple(d.get("char_ngrams", (3, 5)))})
        except TypeError as err:
            raise ConfigError(f"bad featurizer settings: {err}") from None

    @staticmethod
    def tokens(text: str) -> list[str]:
        """NFKC, case-folded, invisible characters removed; words and single punctuation marks."""
        return _WORD.findall(_INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).casefold())

    def _bucket(self, feature: str) -> int:
        return _bucket(feature, self.dim)

    def _window_features(self, words: Sequence[str]) -> Counter[int]:
        feats: Counter[int] = Counter()
        lo, hi = self.char_ngrams
        for n in range(1, self.word_ngrams + 1):
            for i in range(len(words) - n + 1):
                feats[self._bucket("w" + " ".join(words[i : i + n]))] += 1
        for w in words:
            if w[0].isalnum():
                feats.update(_char_buckets(w[:40], lo, hi, self.dim))
        return feats

    def windows(self, text: str) -> list[list[str]]:
        """The word windows of one text (at least one, possibly empty), then those of its decoded
        views (with ``decode``)."""
        out = self._spaced(self.tokens(text))
        if self.decode:
            from secure_train.data_security.scanners.normalize import decodings

            decoded = [w for w in (self.tokens(v) for how, v in decodings(text) if how in _DECODED) if w]
            if decoded:
                out += self._spaced([w for words in decoded for w in words])
        return out

    def _spaced(self, words: list[str]) -> list[list[str]]:
        stride = max(1, self.window // 2)
        starts = list(range(0, max(1, len(words) - self.window + stride), stride)) or [0]
        if len(starts) > self.max_windows:
            step = (len(starts) - 1) / (self.max_windows - 1) if self.max_windows > 1 else 0
            starts = sorted({starts[round(i * step)] for i in range(self.max_windows)})
        return [words[s : s + self.window] for s in starts]

    def featurize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(indices, weights, bag_offsets, owner)``: the inputs of ``nn.EmbeddingBag`` for every
        window of every text, and ``owner[j]`` = the index of the text window ``j`` belongs to."""
        return self.featurize_windows([self.windows(text) for text in texts])

    def featurize_windows(
        self, windows: Sequence[Sequence[Sequence[str]]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`featurize` of texts already cut by :meth:`windows` (one list of windows per text)."""
        idx: list[int] = []
        wts: list[float] = []
        bags: list[int] = []
        owner: list[int] = []
        for t, text_windows in enumerate(windows):
            for words in text_windows:
                bags.append(len(idx))
                owner.append(t)
                feats = self._window_features(words)
                norm = math.sqrt(sum(v * v for v in feats.values())) or 1.0
                for k, v in feats.items():
                    idx.append(k)
                    wts.append(v / norm)
        return (
            torch.tensor(idx, dtype=torch.long),
            torch.tensor(wts, dtype=torch.float32),
            torch.tensor(bags, dtype=torch.long),
            torch.tensor(owner, dtype=torch.long),
        )
