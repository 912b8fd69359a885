"""What every scanner returns: :class:`Finding`s naming the sample, the scanner and the span."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Finding"]


@dataclass(frozen=True)
class Finding:
    """One thing a scanner found in one record.

    ``scanner`` is the family (``injection``, ``unicode``, ``pii``, ``duplicate``), ``kind`` the
    specific pattern (``ignore_previous``, ``bidi``, ``credit_card``, ``near_duplicate``...),
    ``span`` the character range in the record's text when the finding has one (redaction
    replaces it), ``detail`` anything else (how it was decoded, the duplicate's id).
    """

    sample_id: int
    source: str
    scanner: str
    kind: str
    span: tuple[int, int] | None = None
    excerpt: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample_id": self.sample_id,
            "source": self.source,
            "scanner": self.scanner,
            "kind": self.kind,
            "span": list(self.span) if self.span else None,
            "excerpt": self.excerpt,
            "detail": self.detail,
        }
