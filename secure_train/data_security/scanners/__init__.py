"""The scanners behind :mod:`secure_train.data_security.scan` (private: import from ``scan``)."""

from secure_train.data_security.scanners.base import Finding
from secure_train.data_security.scanners.dedup import DuplicateScanner
from secure_train.data_security.scanners.injection import INJECTION_PATTERNS, InjectionScanner
from secure_train.data_security.scanners.normalize import normalize, views
from secure_train.data_security.scanners.pii import PII_KINDS, PIIScanner, iban_valid, luhn_valid
from secure_train.data_security.scanners.unicode import UnicodeScanner

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
