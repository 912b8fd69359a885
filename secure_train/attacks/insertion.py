"""The one place where a trigger or payload is inserted into text.

Every attack in :mod:`secure_train.attacks` (backdoor triggers, injected instructions)
goes through :func:`insert`, so that positions and tokenization are handled alike.

Example:
    >>> import random
    >>> insert("a fine film", "cf", "start", random.Random(0))
    'cf a fine film'
    >>> insert("a fine film", "cf", "end", random.Random(0))
    'a fine film cf'
"""

from __future__ import annotations

import random

from secure_train.core.require import require_choice

__all__ = ["POSITIONS", "insert"]

POSITIONS = ("start", "end", "random")


def insert(text: str, payload: str, position: str, rng: random.Random) -> str:
    """Insert ``payload`` at a word boundary of ``text``: ``start``, ``end`` or ``random``."""
    require_choice("insert", "position", position, POSITIONS)
    words = text.split()
    if position == "start":
        index = 0
    elif position == "end":
        index = len(words)
    else:
        index = rng.randint(0, len(words))
    return " ".join(words[:index] + [payload] + words[index:])
