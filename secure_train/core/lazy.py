"""Lazy package attributes (PEP 562): public names imported on first use.

Every ``secure_train`` package that re-exports names from heavy modules (torch, Lightning)
calls :func:`lazy_attribute` from its ``__getattr__``, so importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["lazy_attribute"]


def lazy_attribute(package: str, exports: dict[str, str], name: str) -> Any:
    """Import ``name`` from the module ``exports[name]`` and cache it on ``package``.

    The ``__getattr__`` of every lazy ``secure_train`` package calls this (PEP 562).

    Example:
        >>> lazy_attribute("secure_train", {"AuditLog": "secure_train.core.audit_log"}, "AuditLog").__name__
        'AuditLog'
    """
    module_name = exports.get(name)
    if module_name is None:
        from secure_train.core.moved import moved_name  # a name that left this package: FutureWarning

        return moved_name(package, name)
    value = getattr(importlib.import_module(module_name), name)
    setattr(importlib.import_module(package), name, value)
    return value
