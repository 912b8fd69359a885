"""Invisible and bidirectional control characters (Trojan Source) and homoglyph words (Unicode TR39).

A word is a ``homoglyph`` finding when it holds a TR39 confusable (:data:`CONFUSABLES`) and is
*mixed-script* per TR39 (the intersection of its characters' Script_Extensions, Common and
Inherited left out, is empty: ``pаypal`` with a Cyrillic ``а``), or mixes ASCII letters with a
non-ASCII Latin look-alike (``pɑypal``), or is a *whole-script confusable* (every letter a
non-Latin look-alike of an ASCII letter, ``рау``) inside Latin text. Accented Latin words
(``café``) and genuine Greek or Cyrillic words (``Москва``) are not.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from secure_train.data_security.scanners.base import Finding
from secure_train.data_security.scanners.normalize import CONFUSABLES, char_class, script_of

__all__ = ["UnicodeScanner"]

_BIDI = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C))
_ZERO_WIDTH = frozenset(
    chr(c) for c in (0x200B, 0x200C, 0x200D, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF, 0x180E)
)
_KINDS = (
    ("bidi", lambda c: c in _BIDI),
    ("zero_width", lambda c: c in _ZERO_WIDTH),
    ("tag_chars", lambda c: 0xE0000 <= ord(c) <= 0xE007F),
    ("variation_selector", lambda c: 0xFE00 <= ord(c) <= 0xFE0F or 0xE0100 <= ord(c) <= 0xE01EF),
    ("soft_hyphen", lambda c: c == "\u00ad"),
    ("control", lambda c: unicodedata.category(c) == "Cc" and c not in "\t\n\r"),
)
_SPECIAL_CHARS = (  # every character of a _KINDS class: without one, no _KINDS finding (skip the loops)
    _BIDI
    | _ZERO_WIDTH
    | frozenset(chr(c) for c in (*range(0xE0000, 0xE0080), *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0), 0xAD))
    | frozenset(chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)))  # Cc
)
_SPECIAL = re.compile(char_class(_SPECIAL_CHARS))
_WORD = re.compile(r"\S+")
_ASCII_WORD = re.compile(r"\b[A-Za-z]{2,}\b")


@functools.cache
def _triggers(homoglyphs: bool) -> frozenset[str]:
    """The characters without which :meth:`UnicodeScanner.scan` reports nothing."""
    return _SPECIAL_CHARS | frozenset(CONFUSABLES) if homoglyphs else _SPECIAL_CHARS


def _homoglyph(word: str, latin_text: bool) -> bool:
    """TR39 checks on one whitespace-delimited word (see the module docstring)."""
    conf = [c for c in word if c in CONFUSABLES]
    if not conf:
        return False
    scripts = [script_of(c) for c in word if c.isalpha() or c in CONFUSABLES]
    scripts = [s for s in scripts if s]
    resolved = frozenset.intersection(*scripts) if scripts else frozenset()
    if scripts and not resolved:  # mixed-script
        return True
    if any(c.isascii() and c.isalpha() for c in word):  # ASCII letters with a non-ASCII look-alike
        return True
    letters = [c for c in word if c.isalpha()]
    whole = bool(letters) and all(c in CONFUSABLES for c in letters) and "Latin" not in resolved
    return whole and latin_text


class UnicodeScanner:
    """Flags bidi overrides/isolates, zero-width and tag characters, variation selectors, soft
    hyphens, C0/C1 controls, and words that mix Latin letters with look-alikes from other scripts.

    Args:
        homoglyphs: also report mixed-script words (``homoglyph``).

    Example:
        >>> s = UnicodeScanner()
        >>> [f.kind for f in s.scan("access\\u202e\\u2066 granted", 0, "x:1")]
        ['bidi']
        >>> [f.kind for f in s.scan("pаypal", 1, "x:2")]  # Cyrillic a
        ['homoglyph']
        >>> s.scan("café déjà vu", 2, "x:3")
        []
    """

    name = "unicode"

    def __init__(self, homoglyphs: bool = True) -> None:
        self.homoglyphs = homoglyphs

    def may_report(self, text: str) -> bool:
        """``False`` when :meth:`scan` certainly finds nothing in ``text``: it is ASCII, or none of
        its characters belongs to a finding's class or is a confusable (the batch scan's test).

        Example:
            >>> s = UnicodeScanner()
            >>> s.may_report("café"), s.may_report("pаypal"), s.may_report("x\u200by")
            (False, True, True)
        """
        if text.isascii():
            return False
        return not _triggers(self.homoglyphs).isdisjoint(set(text))

    def scan(self, text: str, sample_id: int, source: str) -> list[Finding]:
        findings: list[Finding] = []
        if not text.isascii():
            for kind, test in _KINDS if _SPECIAL.search(text) else ():
                positions = [i for i, c in enumerate(text) if test(c)]
                if positions:
                    chars = sorted({f"U+{ord(text[i]):04X}" for i in positions})
                    findings.append(
                        Finding(
                            sample_id,
                            source,
                            self.name,
                            kind,
                            (positions[0], positions[-1] + 1),
                            "",
                            {"count": len(positions), "chars": chars[:8]},
                        )
                    )
            if self.homoglyphs:
                latin_text = len(_ASCII_WORD.findall(text)) >= 3
                for m in _WORD.finditer(text):
                    word = m.group(0)
                    if not word.isascii() and _homoglyph(word, latin_text):
                        findings.append(Finding(sample_id, source, self.name, "homoglyph", m.span(), word[:40]))
                        break
        return findings
