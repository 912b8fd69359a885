"""Constructor checks that raise :class:`~secure_train.core.errors.ConfigError`.

Every message names the class (or function), the parameter and the bad value, so the CLI's one
``secure-train: error:`` line says what to fix, e.g. ``LossSpikeMonitor: window must be an
integer >= 1, got -1``. ``owner`` is the object being configured (``self``: its class name is
used), a class, or a name.

Example:
    >>> class Monitor:
    ...     def __init__(self, window: int = 32, ratio: float = 0.5, action: str = "warn") -> None:
    ...         self.window = require_int(self, "window", window, minimum=1)
    ...         self.ratio = require_in_range(self, "ratio", ratio, "(0, 1)")
    ...         self.action = require_choice(self, "action", action, ("warn", "halt"))
    >>> Monitor(window=-1)
    Traceback (most recent call last):
    ...
    secure_train.core.errors.ConfigError: Monitor: window must be an integer >= 1, got -1
    >>> Monitor(ratio=1.0)
    Traceback (most recent call last):
    ...
    secure_train.core.errors.ConfigError: Monitor: ratio must be in (0, 1), got 1.0
    >>> Monitor(action="stop")
    Traceback (most recent call last):
    ...
    secure_train.core.errors.ConfigError: Monitor: action must be one of ('warn', 'halt'), got 'stop'
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from secure_train.core.errors import ConfigError, SecureTrainError

__all__ = [
    "config_errors",
    "owner_name",
    "require_choice",
    "require_in_range",
    "require_int",
    "require_non_empty",
    "require_positive",
]

T = TypeVar("T")
_INTERVAL = re.compile(r"^\s*([\[(])\s*(-?[\w.]+)\s*,\s*(-?[\w.]+)\s*([\])])\s*$")


def owner_name(owner: object) -> str:
    """The name a message starts with: ``owner`` itself if a string, a class's name, else its class's."""
    if isinstance(owner, str):
        return owner
    return owner.__name__ if isinstance(owner, type) else type(owner).__name__


def _fail(owner: object, name: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"{owner_name(owner)}: {name} must be {expected}, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def require_int(
    owner: object,
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    optional: bool = False,
) -> Any:
    """``value`` if it is an integer (``int``, NumPy's; not a ``bool``) in ``[minimum, maximum]``;
    ``None`` passes when ``optional``.

    >>> require_int("Sampler", "accumulate", 4, minimum=1)
    4
    >>> require_int("Sampler", "steps_per_epoch", None, minimum=1, optional=True) is None
    True
    >>> require_int("Sampler", "accumulate", 2.5, minimum=1)
    Traceback (most recent call last):
    ...
    secure_train.core.errors.ConfigError: Sampler: accumulate must be an integer >= 1, got 2.5
    """
    if value is None and optional:
        return value
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        if minimum is not None and maximum is not None:
            bound = f" in [{minimum}, {maximum}]"
        else:
            bound = f" >= {minimum}" if minimum is not None else f" <= {maximum}" if maximum is not None else ""
        raise _fail(owner, name, "an integer" + bound, value)
    return value


def require_positive(owner: object, name: str, value: Any, *, optional: bool = False) -> Any:
    """``value`` if it is a finite number ``> 0``; ``None`` passes when ``optional``.

    >>> require_positive("HFModule", "lr", 1e-3)
    0.001
    >>> require_positive("HFModule", "lr", 0)
    Traceback (most recent call last):
    ...
    secure_train.core.errors.ConfigError: HFModule: lr must be > 0, got 0
    """
    if value is None and optional:
        return value
    if not _is_number(value) or not 0 < value < math.inf:
        raise _fail(owner, name, "> 0", value)
    return value


def require_in_range(owner: object, name: str, value: Any, interval: str, *, optional: bool = False) -> Any:
    """``value`` if it is a number inside ``interval``, written ``"[0, 1)"``, ``"(1, inf)"``...;
    NaN is never inside. ``None`` passes when ``optional``.

    >>> require_in_range("Poisson", "sample_rate", 1.0, "(0, 1]")
    1.0
    >>> require_in_range("Monitor", "band", float("nan"), "(1, inf)")
    Traceback (most recent call last):
    ...
    secure_train.core.errors.ConfigError: Monitor: band must be in (1, inf), got nan
    """
    if value is None and optional:
        return value
    match = _INTERVAL.match(interval)
    if match is None:
        raise ValueError(f"not an interval: {interval!r}")  # a bug in the caller, not a setting
    left, low_text, high_text, right = match.groups()
    low, high = float(low_text), float(high_text)
    inside = _is_number(value) and (low <= value if left == "[" else low < value)
    inside = inside and (value <= high if right == "]" else value < high)
    if not inside:
        raise _fail(owner, name, f"in {interval.strip()}", value)
    return value


def require_choice(owner: object, name: str, value: T, choices: Collection[Any]) -> T:
    """``value`` if it is one of ``choices``.

    >>> require_choice("TextDataModule", "backend", "arrow", ("auto", "memory", "arrow"))
    'arrow'
    """
    try:
        ok = value in choices
    except TypeError:  # an unhashable value and a set of choices
        ok = False
    if not ok:
        raise _fail(owner, name, f"one of {tuple(choices)!r}", value)
    return value


def require_non_empty(owner: object, name: str, value: T) -> T:
    """``value`` if it is a non-blank string, or a non-empty collection of non-blank strings.

    >>> require_non_empty("AdaptivePoisoning", "words", ["cf", " "])
    Traceback (most recent call last):
    ...
    secure_train.core.errors.ConfigError: AdaptivePoisoning: words must be non-empty, got ['cf', ' ']
    """
    items = [value] if isinstance(value, str) else value
    ok = isinstance(items, Collection) and len(items) > 0
    ok = ok and all(not isinstance(v, str) or v.strip() for v in items)  # type: ignore[union-attr]
    if not ok:
        raise _fail(owner, name, "non-empty", value)
    return value


@contextmanager
def config_errors(owner: object) -> Iterator[None]:
    r"""Turn a ``ValueError``/``TypeError`` raised by a check in the block into a :class:`ConfigError`
    that starts with ``owner``'s name (a ``ConfigError`` gets the name too, if it lacks it; other
    :class:`~secure_train.core.errors.SecureTrainError`\ s pass unchanged).

    For constructors that pass their settings to a base class or helper whose checks raise plain
    ``ValueError``. Wrap only the calls that check settings, never work on data.

    >>> with config_errors("GradNormMonitor"):
    ...     raise ValueError("window must be >= 1, got 0")
    Traceback (most recent call last):
    ...
    secure_train.core.errors.ConfigError: GradNormMonitor: window must be >= 1, got 0
    """
    prefix = f"{owner_name(owner)}: "
    try:
        yield
    except SecureTrainError as err:
        if not isinstance(err, ConfigError) or str(err).startswith(prefix):
            raise
        raise ConfigError(f"{prefix}{err}") from err
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{prefix}{err}") from err
