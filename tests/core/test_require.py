"""The constructor checks of secure_train.core.require: ConfigError naming class, parameter and value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from secure_train.core.errors import ConfigError, DataError
from secure_train.core.require import (
    config_errors,
    owner_name,
    require_choice,
    require_in_range,
    require_int,
    require_non_empty,
    require_positive,
)


class Widget:
    pass


def test_owner_name_of_instance_class_and_string():
    assert owner_name(Widget()) == owner_name(Widget) == "Widget"
    assert owner_name("encrypt") == "encrypt"


def test_require_int_accepts_integers_in_bounds_and_returns_them():
    assert require_int(Widget(), "n", 3, minimum=1) == 3
    assert require_int(Widget(), "n", np.int64(3), minimum=1, maximum=3) == 3
    assert require_int(Widget(), "n", None, minimum=1, optional=True) is None
    assert require_int(Widget(), "n", -5) == -5


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (0, {"minimum": 1}, "Widget: n must be an integer >= 1, got 0"),
        (True, {"minimum": 0}, "Widget: n must be an integer >= 0, got True"),
        (2.0, {}, "Widget: n must be an integer, got 2.0"),
        ("3", {"minimum": 1}, "Widget: n must be an integer >= 1, got '3'"),
        (None, {"minimum": 1}, "Widget: n must be an integer >= 1, got None"),
        (9, {"minimum": 1, "maximum": 8}, "Widget: n must be an integer in [1, 8], got 9"),
        (9, {"maximum": 8}, "Widget: n must be an integer <= 8, got 9"),
    ],
)
def test_require_int_refuses(value, kwargs, message):
    with pytest.raises(ConfigError) as err:
        require_int(Widget(), "n", value, **kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize("value", [0, -1.0, math.inf, math.nan, "1", None, True])
def test_require_positive_refuses(value):
    with pytest.raises(ConfigError, match=r"^Widget: lr must be > 0, got "):
        require_positive(Widget(), "lr", value)


def test_require_positive_accepts():
    assert require_positive(Widget(), "lr", 1e-9) == 1e-9
    assert require_positive(Widget(), "lr", None, optional=True) is None


@pytest.mark.parametrize(
    ("interval", "inside", "outside"),
    [
        ("(0, 1)", [0.5, 1e-12], [0.0, 1.0, -0.1, math.nan]),
        ("[0, 1)", [0.0, 0.999], [1.0, -1e-12]),
        ("(0, 1]", [1.0, 0.01], [0.0, 1.5]),
        ("[0, 1]", [0.0, 1.0], [1.01, -0.01]),
        ("(1, inf)", [1.0001, 1e300], [1.0, math.inf, math.nan]),
        ("[0, inf)", [0, 7.5], [-1, math.nan]),
    ],
)
def test_require_in_range_intervals(interval, inside, outside):
    for value in inside:
        assert require_in_range("W", "x", value, interval) == value
    for value in outside:
        with pytest.raises(ConfigError) as err:
            require_in_range("W", "x", value, interval)
        assert str(err.value) == f"W: x must be in {interval}, got {value!r}"


def test_require_in_range_refuses_non_numbers_and_passes_optional_none():
    with pytest.raises(ConfigError, match=r"got '0\.5'"):
        require_in_range("W", "x", "0.5", "(0, 1)")
    with pytest.raises(ConfigError):
        require_in_range("W", "x", None, "(0, 1)")
    assert require_in_range("W", "x", None, "(0, 1)", optional=True) is None


def test_require_in_range_bad_interval_is_a_bug_not_a_setting():
    with pytest.raises(ValueError, match="not an interval") as err:
        require_in_range("W", "x", 0.5, "0..1")
    assert not isinstance(err.value, ConfigError)


def test_require_choice():
    assert require_choice("W", "mode", "a", ("a", "b")) == "a"
    with pytest.raises(ConfigError) as err:
        require_choice("W", "mode", "c", ("a", "b"))
    assert str(err.value) == "W: mode must be one of ('a', 'b'), got 'c'"
    with pytest.raises(ConfigError):
        require_choice("W", "mode", ["a"], {"a", "b"})  # unhashable: not a choice, no TypeError


@pytest.mark.parametrize("value", ["", "   ", [], (), ["ok", ""], None, 3])
def test_require_non_empty_refuses(value):
    with pytest.raises(ConfigError, match=r"^W: words must be non-empty, got "):
        require_non_empty("W", "words", value)


def test_require_non_empty_accepts():
    assert require_non_empty("W", "words", ["cf"]) == ["cf"]
    assert require_non_empty("W", "refusal", "no") == "no"


def test_config_errors_names_the_owner_once():
    with pytest.raises(ConfigError) as err, config_errors(Widget()):
        raise ValueError("window must be >= 1, got 0")
    assert str(err.value) == "Widget: window must be >= 1, got 0"
    assert isinstance(err.value.__cause__, ValueError)
    with pytest.raises(ConfigError) as err, config_errors(Widget()):
        raise ConfigError("action must be one of ('warn',), got 'x'")
    assert str(err.value) == "Widget: action must be one of ('warn',), got 'x'"
    with pytest.raises(ConfigError) as err, config_errors(Widget()):
        raise ConfigError("Widget: already named")
    assert str(err.value) == "Widget: already named"
    with pytest.raises(ConfigError, match="^Widget: '<' not supported"), config_errors(Widget()):
        _ = "a" < 1  # type: ignore[operator]


def test_config_errors_leaves_other_errors_alone():
    with pytest.raises(DataError, match="^bad row$"), config_errors("W"):
        raise DataError("bad row")
    with pytest.raises(KeyError), config_errors("W"):
        raise KeyError("x")
    with config_errors("W"):
        pass
