"""PII and secret recognizers with validation, and redaction.

Presidio is not used. Its pattern recognizers are regular expressions plus checksums too, and
they do run offline with a blank spaCy pipeline; we did not compare speed or accuracy with them.
Each recognizer is a regex for candidates plus a validator that removes look-alikes:

- ``email``: RFC 5322-ish local part, a dotted domain with a 2+ letter TLD.
- ``phone``: North American (``(555) 123-4567``, ``555-123-4567``, ``+1 555 123 4567``) and
  international ``+CC`` numbers with 8-15 digits; needs separators or a ``+`` (a bare run of
  digits is not taken for a phone number), and 2-digit years or prices do not match.
- ``credit_card``: 13-19 digits, optionally grouped by spaces or dashes, with a known issuer
  prefix (Visa, Mastercard, Amex, Discover, JCB, Diners) **and a valid Luhn checksum**.
- ``iban``: country code, check digits and BBAN with the country's length, **ISO 7064 mod-97 == 1**.
- ``ssn``: US ``AAA-GG-SSSS`` with the SSA's rules (no area 000, 666 or 9xx, no group 00, no
  serial 0000); undashed nine digits only after the word SSN.
- ``ip_address``: IPv4 (octets <= 255, not a version-like ``1.2.3``) and IPv6 (checked by ``ipaddress``).
- ``api_key``: AWS access keys, GitHub / GitLab / Slack / Stripe / Google / OpenAI / Hugging Face
  tokens, JWTs, PEM private-key blocks, and ``password=`` / ``api_key:`` style assignments of
  a high-entropy value.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from secure_train.core.errors import ConfigError
from secure_train.data_security.scanners.base import Finding
from secure_train.data_security.scanners.prefilter import Prefilter, available_engine

__all__ = ["PII_KINDS", "PIIScanner", "iban_valid", "luhn_valid"]


def luhn_valid(digits: str) -> bool:
    """Luhn checksum over a string of digits.

    Example:
        >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
        (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CR": 22,
    "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22,
    "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24,
    "XK": 20,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """Country length and ISO 7064 mod-97 check of an IBAN (spaces ignored).

    Example:
        >>> iban_valid("GB82 WEST 1234 5698 7654 32"), iban_valid("GB82 WEST 1234 5698 7654 33")
        (True, False)
    """
    s = iban.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(s[:2]) != len(s) or not s.isalnum():
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _card_valid(m: str) -> bool:
    digits = re.sub(r"[ -]", "", m)
    if not 13 <= len(digits) <= 19:
        return False
    d2, d4, n = int(digits[:2]), int(digits[:4]), len(digits)
    prefix_ok = (
        (digits[0] == "4" and n in (13, 16, 19))  # Visa
        or ((51 <= d2 <= 55 or 2221 <= d4 <= 2720) and n == 16)  # Mastercard
        or (d2 in (34, 37) and n == 15)  # Amex
        or ((d2 == 65 or d4 == 6011 or d2 == 35) and n >= 16)  # Discover, JCB
        or (d2 in (36, 38, 30) and n >= 14)  # Diners
    )
    return prefix_ok and luhn_valid(digits)


def _ssn_valid(m: str) -> bool:
    digits = re.sub(r"\D", "", m)
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _ip_valid(m: str) -> bool:
    try:
        ipaddress.ip_address(m)
    except ValueError:
        return False
    return True


def _phone_valid(m: str) -> bool:
    n = len(re.sub(r"\D", "", m))
    return 10 <= n <= 15 if not m.startswith("+") else 8 <= n <= 15


def _entropy(s: str) -> float:
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def _secret_valid(m: str) -> bool:
    value = re.split(r"[:=]\s*", m, maxsplit=1)[-1].strip("'\" ")
    return len(value) >= 8 and _entropy(value) >= 3.0


@dataclass(frozen=True)
class _Recognizer:
    kind: str
    pattern: re.Pattern[str]
    validate: Callable[[str], bool] | None = None
    group: int = 0


_R = re.compile
_RECOGNIZERS = (
    _Recognizer(
        "api_key",
        _R(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY(?: BLOCK)?-----|$)"),  # noqa: E501
    ),
    _Recognizer(
        "api_key",
        _R(
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{22,}\b"
            r"|\bglpat-[A-Za-z0-9_-]{20,}\b|\bxox[baprs]-[A-Za-z0-9-]{10,}\b|\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}\b"
            r"|\bAIza[0-9A-Za-z_-]{35}\b|\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}\b|\bhf_[A-Za-z0-9]{30,}\b"
            r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
        ),
    ),
    _Recognizer(
        "api_key",
        _R(
            r"(?i)\b(?:api[_-]?key|apikey|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|password|passwd|pwd|client[_-]?secret|private[_-]?key)"  # noqa: E501
            r"\s*[:=]\s*['\"]?[^\s'\"]{8,}"
        ),
        _secret_valid,
    ),
    _Recognizer("email", _R(r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")),
    _Recognizer(
        "iban", _R(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), iban_valid
    ),
    _Recognizer("credit_card", _R(r"(?<![\d-])(?:\d{4}[ -]?){2,3}\d{4}(?:[ -]?\d{1,3})?(?![\d-])|(?<![\d-])3[47]\d{2}[ -]?\d{6}[ -]?\d{5}(?![\d-])"), _card_valid),  # noqa: E501
    _Recognizer("ssn", _R(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])|(?i:\bssn\b\W{0,3}#?\s*)(\d{9})\b"), _ssn_valid),
    _Recognizer(
        "phone",
        _R(
            r"(?<![\w+])(?:\+1[ .-]?)?\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}\b"
            r"|(?<![\w+.-])(?:\+1[ .-])?\d{3}[.-]\d{3}[.-]\d{4}\b"
            r"|(?<![\w+])(?:\+1 )?\d{3} \d{3} \d{4}\b"
            r"|(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}\b"
        ),
        _phone_valid,
    ),
    _Recognizer(
        "ip_address",
        _R(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])"
           r"|(?<![:\w])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}(?![:\w])|(?<![:\w])(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?(?![:\w])"),  # noqa: E501
        _ip_valid,
    ),
)  # fmt: skip

PII_KINDS = ("email", "phone", "credit_card", "iban", "ssn", "ip_address", "api_key")
_GATE = r"[0-9@=:\-]"  # on ASCII text (the only text the prefilter answers for): ch.isdigit() or ch in "@=:-"


class PIIScanner:
    """Finds PII and secrets (see the module docstring for what each recognizer accepts) and redacts them.

    Overlapping candidates go to the recognizer listed first (secrets, email, IBAN, card, SSN,
    phone, IP), so a card number is not also reported as a phone number.

    Args:
        kinds: which of :data:`PII_KINDS` to look for (default all).
        engine: multi-pattern prefilter (``auto``, ``hyperscan``, ``re2``, ``re``): one pass picks
            the recognizers whose ``re`` search runs; ``"re"`` runs all (same spans, slower).

    Example:
        >>> s = PIIScanner()
        >>> text = "mail jo@example.com or call (555) 123-4567, card 4111 1111 1111 1111"
        >>> [f.kind for f in s.scan(text, 0, "x:1")]
        ['email', 'phone', 'credit_card']
        >>> s.redact(text)
        'mail [EMAIL] or call [PHONE], card [CREDIT_CARD]'
        >>> s.scan("order 4111 1111 1111 1112", 1, "x:2")  # Luhn-invalid
        []
    """

    name = "pii"

    def __init__(self, kinds: tuple[str, ...] | list[str] | None = None, *, engine: str = "auto") -> None:
        kinds = tuple(kinds or PII_KINDS)
        unknown = set(kinds) - set(PII_KINDS)
        if unknown:
            raise ConfigError(f"kinds: unknown PII kinds {sorted(unknown)}; expected some of {PII_KINDS}")
        self.kinds = kinds
        self._recognizers = [r for r in _RECOGNIZERS if r.kind in kinds]
        self.engine = available_engine(engine)
        # pattern 0: the cheap gate (a digit or one of @=:-), then one per recognizer
        self._prefilter = Prefilter(
            [_GATE, *((r.pattern.pattern, r.pattern.flags) for r in self._recognizers)], self.engine
        )

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """Non-overlapping ``(start, end, kind)`` of everything recognized, in text order."""
        taken: list[tuple[int, int, str]] = []
        cand = self._prefilter.candidates(text)
        if cand is None:
            if not any(ch.isdigit() or ch in "@=:-" for ch in text):
                return taken
            recognizers = self._recognizers
        else:  # a recognizer the prefilter rules out finds nothing: skip it (same spans)
            if 0 not in cand:
                return taken
            recognizers = [r for i, r in enumerate(self._recognizers, 1) if i in cand]
        for rec in recognizers:
            for m in rec.pattern.finditer(text):
                group = 1 if m.lastindex and m.group(1) is not None else 0
                start, end = m.span(group)
                value = m.group(group)
                if rec.validate is not None and not rec.validate(value):
                    continue
                if any(start < e and s < end for s, e, _ in taken):
                    continue
                taken.append((start, end, rec.kind))
        return sorted(taken)

    def scan(self, text: str, sample_id: int, source: str) -> list[Finding]:
        out = []
        for start, end, kind in self.spans(text):
            value = text[start:end]
            masked = value[:2] + "*" * max(0, len(value) - 4) + value[-2:] if len(value) > 4 else "****"
            out.append(Finding(sample_id, source, self.name, kind, (start, end), masked))
        return out

    def redact(self, text: str, spans: list[tuple[int, int, str]] | None = None) -> str:
        """``text`` with every recognized span replaced by ``[KIND]``."""
        for start, end, kind in reversed(spans if spans is not None else self.spans(text)):
            text = text[:start] + f"[{kind.upper()}]" + text[end:]
        return text
