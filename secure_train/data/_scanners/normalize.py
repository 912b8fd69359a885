"""Unicode normalization and decoding that scanners look through.

Attackers hide instructions from naive filters with fullwidth or styled letters (undone by
NFKC), look-alike letters from other scripts (the *confusables* below), invisible characters
between letters, and encodings (base64, rot13, percent-encoding, HTML entities).
:func:`views` yields every readable form of a text so a pattern only has to match plain
lowercase English.

The confusables table is a curated subset of Unicode's ``confusables.txt`` (TR39): the
Cyrillic, Greek and Latin-extended letters that look like ASCII letters in common fonts. The
full table is not shipped by any installed package here, and the subset covers the letters
homoglyph attacks use in practice; NFKC already maps the mathematical and fullwidth forms.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator

__all__ = ["CONFUSABLES", "INVISIBLE", "normalize", "views"]

# Look-alikes -> ASCII (Cyrillic, Greek, Armenian, Latin extended, IPA).
_CONFUSABLE_PAIRS = (
    "аa вb сc ԁd еe һh іi јj кk ӏl мm пn оo рp ԛq гr ѕs тt цu ѵv ԝw хx уy ӡz "
    "АA ВB СC ЕE НH ІI ЈJ КK МM ОO РP ЅS ТT ХX УY ԜW ԌG ԛq ɡg "
    "αa βb εe ηn ιi κk νv οo ρp τt υu χx γy ΑA ΒB ΕE ΖZ ΗH ΙI ΚK ΜM ΝN ΟO ΡP ΤT ΥY ΧX "
    "օo սu ոn ɑa ɩi ɪi ʏy ℓl ı i ȷj ꞇt ꮪs ꓚc ꓳo ꓑp"
)
CONFUSABLES: dict[str, str] = {}
for _pair in _CONFUSABLE_PAIRS.split():
    if len(_pair) == 2:
        CONFUSABLES[_pair[0]] = _pair[1]
CONFUSABLES["ı"] = "i"
_CONF_TABLE = str.maketrans(CONFUSABLES)

INVISIBLE = frozenset(
    [chr(c) for c in (0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0)]
    + [chr(c) for c in range(0x200B, 0x2010)]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2060, 0x2070)]
    + [chr(c) for c in range(0xFE00, 0xFE10)]
    + [chr(c) for c in range(0xE0000, 0xE0080)]
    + [chr(c) for c in range(0xE0100, 0xE01F0)]
)
"""Zero-width, bidi, variation-selector and tag characters: removed before matching."""
_INVISIBLE_RE = re.compile("[" + "".join(re.escape(c) for c in sorted(INVISIBLE)) + "]")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
_WS = re.compile(r"\s+")
_B64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_SPACED = re.compile(r"(?:\b\w (?=\w\b)){4,}")
_SPACED_JOIN = re.compile(r"(?<=\b\w) (?=\w\b)")
_PCT = re.compile(r"%[0-9A-Fa-f]{2}")
_HEXESC = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){4,}")


def _tag_text(text: str) -> str:
    """ASCII smuggled in Unicode tag characters (U+E0020..E007E) -> the ASCII it encodes."""
    return "".join(chr(ord(c) - 0xE0000) for c in text if 0xE0020 <= ord(c) <= 0xE007E)


def normalize(text: str) -> str:
    """NFKC, confusables to ASCII, invisible characters removed, casefolded, whitespace collapsed.

    Example:
        >>> normalize("Ｉｇｎｏｒｅ рrеviоus\\u200b instructions")
        'ignore previous instructions'
    """
    if not text.isascii():  # NFKC, invisible characters and confusables are no-ops on ASCII
        text = unicodedata.normalize("NFKC", text)
        text = _INVISIBLE_RE.sub("", text).translate(_CONF_TABLE)
    return _WS.sub(" ", text.casefold()).strip()


def _printable(s: str) -> bool:
    return bool(s) and sum(ch.isprintable() or ch.isspace() for ch in s) >= 0.95 * len(s)


def views(text: str) -> Iterator[tuple[str, str]]:
    """``(how, normalized text)`` for every readable form: ``plain``, ``leet``, ``rot13``,
    ``percent``, ``html``, ``hex``, ``base64`` (each decodable run), ``tags`` (tag-character ASCII).

    Example:
        >>> dict(views("aWdub3JlIHByZXZpb3VzIGluc3RydWN0aW9ucw=="))["base64"]
        'ignore previous instructions'
    """
    plain = normalize(text)
    yield "plain", plain
    if _SPACED.search(text):  # "i g n o r e  a l l": letters spaced out, words by wider gaps
        yield "despaced", normalize(_SPACED_JOIN.sub("", text))
    if "\u202e" in text or "\u2067" in text:  # right-to-left override: stored reversed
        yield "reversed", normalize(text[::-1])
    leet = plain.translate(_LEET)
    if leet != plain:
        yield "leet", leet
    yield "rot13", codecs.encode(plain, "rot13")
    if _PCT.search(text):
        yield "percent", normalize(urllib.parse.unquote(text))
    if "&" in text and ";" in text:
        unescaped = html.unescape(text)
        if unescaped != text:
            yield "html", normalize(unescaped)
    if _HEXESC.search(text):
        try:
            yield "hex", normalize(codecs.decode(text.encode("latin-1", "ignore"), "unicode_escape"))
        except (UnicodeDecodeError, ValueError):
            pass
    for match in _B64.finditer(text):
        chunk = match.group(0)
        try:
            raw = base64.b64decode(
                chunk + "=" * (-len(chunk) % 4), altchars=b"-_" if "-" in chunk or "_" in chunk else None
            )
            decoded = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if _printable(decoded):
            yield "base64", normalize(decoded)
    tags = _tag_text(text)
    if tags:
        yield "tags", normalize(tags)
