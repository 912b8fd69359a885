"""The scanners behind :mod:`secure_train.data.scan` (private: import from ``scan``)."""

from secure_train.data._scanners.base import Finding
from secure_train.data._scanners.dedup import DuplicateScanner
from secure_train.data._scanners.injection import INJECTION_PATTERNS, InjectionScanner
from secure_train.data._scanners.normalize import normalize, views
from secure_train.data._scanners.pii import PII_KINDS, PIIScanner, iban_valid, luhn_valid
from secure_train.data._scanners.unicode import UnicodeScanner

__all__ = [
    "INJECTION_PATTERNS",
    "PII_KINDS",
    "DuplicateScanner",
    "Finding",
    "InjectionScanner",
    "PIIScanner",
    "UnicodeScanner",
    "iban_valid",
    "luhn_valid",
    "normalize",
    "views",
]
