"""The control catalogue: every defense the report shows, mapped to OWASP / MITRE ATLAS / NIST AI RMF.

The mapping is data (``frameworks.json`` in this package), with the version of each framework
it was written against, so reviewers can check it and a new framework version is a data change.

Example:
    >>> catalog = ControlCatalog.load()
    >>> catalog.frameworks["owasp"]["version"]
    '2025'
    >>> catalog.control("differential_privacy")["owasp"]
    ['LLM02']
    >>> catalog.describe("atlas", "AML.T0020")
    'Poison Training Data'
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from secure_train.core.errors import ConfigError

__all__ = ["ControlCatalog"]

_KINDS = ("owasp", "atlas", "nist")


class ControlCatalog:
    """Controls and their framework mappings, read from a JSON data file.

    Args:
        data: the parsed document (``frameworks`` and ``controls``).

    Raises:
        ConfigError: a control names a framework item the document does not define.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        try:
            self.frameworks: dict[str, dict[str, Any]] = data["frameworks"]
            self.controls: list[dict[str, Any]] = data["controls"]
        except (KeyError, TypeError):
            raise ConfigError("control catalogue needs 'frameworks' and 'controls'") from None
        for control in self.controls:
            for kind in _KINDS:
                items = self.frameworks.get(kind, {}).get("items", {})
                unknown = [i for i in control.get(kind, []) if i not in items]
                if unknown:
                    raise ConfigError(f"control {control.get('id')!r}: unknown {kind} items {unknown}")

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> ControlCatalog:
        """The catalogue at ``path``, or the one shipped with secure-train."""
        if path is None:
            shipped = resources.files("secure_train.response.report").joinpath("frameworks.json")
            text = shipped.read_text(encoding="utf-8")
        else:
            p = Path(path)
            if not p.is_file():
                raise ConfigError(f"control catalogue {p}: no such file")
            text = p.read_text(encoding="utf-8")
        try:
            return cls(json.loads(text))
        except json.JSONDecodeError as err:
            raise ConfigError(f"control catalogue: not valid JSON ({err.msg})") from None

    def control(self, control_id: str) -> dict[str, Any]:
        """The catalogue entry of ``control_id``."""
        for control in self.controls:
            if control["id"] == control_id:
                return control
        raise ConfigError(f"no control {control_id!r} in the catalogue")

    def describe(self, kind: str, item: str) -> str:
        """The name of a framework item (``"LLM04"`` -> ``"Data and Model Poisoning"``)."""
        return str(self.frameworks[kind]["items"].get(item, item))

    def versions(self) -> dict[str, str]:
        """``{kind: "name version"}`` for the report's footer."""
        return {k: f"{v['name']} {v['version']}" for k, v in self.frameworks.items()}
