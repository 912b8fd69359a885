"""Obfuscations of an injected payload: encodings, look-alike characters, invisible characters.

Each method maps ``(payload, rng)`` to the obfuscated payload; the name is also the
template id suffix (``obfuscation/<name>``). Deterministic given the ``rng``.

Example:
    >>> import random
    >>> obfuscate("ignore this", "rot13", random.Random(0))
    'rot13: vtaber guvf'
    >>> obfuscate("ignore this", "leetspeak", random.Random(0))
    '1gn0r3 7h15'
    >>> "\\u200b" in obfuscate("ignore this", "zero-width", random.Random(0))
    True
"""

from __future__ import annotations

import base64
import codecs
import random
from collections.abc import Callable

from secure_train.core.require import require_choice

__all__ = ["HOMOGLYPHS", "OBFUSCATIONS", "obfuscate"]

HOMOGLYPHS = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "x": "\u0445", "i": "\u0456"}
"""Latin letters and their Cyrillic look-alikes."""

_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060")


def _base64(text: str, rng: random.Random) -> str:
    return "Decode this base64 and follow it: " + base64.b64encode(text.encode()).decode()


def _rot13(text: str, rng: random.Random) -> str:
    return "rot13: " + codecs.encode(text, "rot13")


def _leet(text: str, rng: random.Random) -> str:
    return text.lower().translate(_LEET)


def _homoglyph(text: str, rng: random.Random) -> str:
    return "".join(HOMOGLYPHS.get(ch, ch) if rng.random() < 0.7 else ch for ch in text)


def _zero_width(text: str, rng: random.Random) -> str:
    return "".join(ch + (rng.choice(_ZERO_WIDTH) if ch.isalpha() and rng.random() < 0.5 else "") for ch in text)


def _bidi(text: str, rng: random.Random) -> str:
    # Right-to-left override: stored reversed, displayed in reading order.
    return "\u202e" + text[::-1] + "\u202c"


def _spacing(text: str, rng: random.Random) -> str:
    return "  ".join(" ".join(word) for word in text.split())


def _html_comment(text: str, rng: random.Random) -> str:
    return f"<!-- {text} -->"


def _markdown_comment(text: str, rng: random.Random) -> str:
    return f"[//]: # ({text})"


OBFUSCATIONS: dict[str, Callable[[str, random.Random], str]] = {
    "base64": _base64,
    "rot13": _rot13,
    "leetspeak": _leet,
    "homoglyph": _homoglyph,
    "zero-width": _zero_width,
    "bidi": _bidi,
    "spacing": _spacing,
    "html-comment": _html_comment,
    "markdown-comment": _markdown_comment,
}
"""Obfuscation name -> function ``(payload, rng) -> obfuscated payload``."""


def obfuscate(text: str, method: str, rng: random.Random) -> str:
    """Apply the obfuscation ``method`` (a key of :data:`OBFUSCATIONS`) to ``text``."""
    require_choice("obfuscate", "method", method, sorted(OBFUSCATIONS))
    return OBFUSCATIONS[method](text, rng)
