"""MkDocs hook: a Google-style ``Example:`` section (singular, as this package's docstrings write
it) is parsed like ``Examples:``, so its ``>>>`` lines render as code instead of Markdown.

Griffe maps only the plural title to its examples section; the mapping table is private, so the
hook checks it is there and fails the build loudly if a griffe release renames it.
"""

from __future__ import annotations

from typing import Any


def on_startup(**kwargs: Any) -> None:
    from griffe._internal.docstrings import google  # the only place the titles are mapped

    kinds = google._section_kind
    if "examples" not in kinds:
        raise RuntimeError("griffe changed its Google section table; update docs/hooks/example_sections.py")
    kinds.setdefault("example", kinds["examples"])
