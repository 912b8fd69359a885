"""The one place that turns a ``class_path`` into an object, and what it refuses.

A class is built only when it is allowed: our model classes (those exported by
:mod:`secure_train.models`) or a class path the user names explicitly (in a suite or recipe
YAML, or with ``--allow-class`` on the command line). A class path is checked as a string
*before* anything is imported, so a name from a file cannot even trigger a module import.
Functions are never built, only classes.

Values read from an artifact (a checkpoint's ``hyper_parameters``) are data:
:meth:`ClassAllowList.refuse_objects` rejects any nested ``class_path`` / ``init_args`` /
``_instantiator`` (and the Hugging Face remote-code keys ``auto_map`` /
``trust_remote_code``) with one line naming the key, and they are never resolved.

Example:
    >>> allow = ClassAllowList(["collections.OrderedDict"])
    >>> dict(allow.build({"class_path": "collections.OrderedDict", "init_args": {"a": 1}}, source="demo"))
    {'a': 1}
    >>> allow.instantiate(dict, {"a": 1}, source="demo", b={"class_path": "x.Y"})  # data stays data
    {'b': {'class_path': 'x.Y'}, 'a': 1}
    >>> allow.allows("subprocess.Popen"), allow.allows("secure_train.models.TextClassifier")
    (False, True)
    >>> ClassAllowList.refuse_objects({"lr": 0.1, "x": {"class_path": "os.system"}}, source="ckpt")
    Traceback (most recent call last):
    ...
    secure_train.core.errors.ConfigError: ckpt.x: holds 'class_path'; values from a file are data, never objects
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from secure_train.core.errors import ConfigError

__all__ = ["MODEL_PACKAGE", "OBJECT_KEYS", "ClassAllowList"]

MODEL_PACKAGE = "secure_train.models"
"""Classes exported by this package (``__all__``) are always allowed."""

OBJECT_KEYS = frozenset({"class_path", "_class_path", "init_args", "_instantiator", "auto_map", "trust_remote_code"})
"""Keys that would make a value build an object or run code; refused in data from a file."""


def _model_classes() -> frozenset[type]:
    module = importlib.import_module(MODEL_PACKAGE)
    objs = (getattr(module, name) for name in getattr(module, "__all__", ()))
    return frozenset(o for o in objs if inspect.isclass(o))


def _named_classes(config: Any) -> Iterable[str]:
    """Every ``class_path`` string in a (trusted) config, at any depth."""
    if isinstance(config, Mapping):
        if isinstance(config.get("class_path"), str):
            yield config["class_path"]
        for value in config.values():
            yield from _named_classes(value)
    elif isinstance(config, (list, tuple)):
        for value in config:
            yield from _named_classes(value)


class ClassAllowList:
    """Which classes may be built, and the builder every ``class_path`` site uses.

    Args:
        class_paths: class paths the user named explicitly (suite / recipe / command line).
        config: a trusted config (a suite or recipe section); every ``class_path`` in it is
            added, so a user's own YAML builds what it names.

    Example:
        >>> sorted(ClassAllowList(config={"class_path": "a.B", "init_args": {"t": {"class_path": "c.D"}}}).explicit)
        ['a.B', 'c.D']
    """

    def __init__(self, class_paths: Iterable[str] = (), *, config: Any = None) -> None:
        names = [*class_paths, *_named_classes(config)]
        for name in names:
            if not isinstance(name, str) or "." not in name:
                raise ConfigError(f"a class path needs a module and a name (module.Class), got {name!r}")
        self.explicit = frozenset(names)

    def extend(self, class_paths: Iterable[str] = (), *, config: Any = None) -> ClassAllowList:
        """A new list with more user-named classes."""
        return ClassAllowList([*self.explicit, *class_paths], config=config)

    def allows(self, class_path: object) -> bool:
        """Whether ``class_path`` may be imported at all (a string check; nothing is imported)."""
        if not isinstance(class_path, str):
            return False
        return class_path in self.explicit or class_path.startswith(MODEL_PACKAGE + ".")

    def resolve(self, class_path: object, *, source: str, base: type | None = None) -> type:
        """Import an allowed class.

        Args:
            class_path: ``module.Class``.
            source: where the name came from, for the error (a file and key).
            base: the class must subclass this (e.g. ``LightningModule``).

        Raises:
            ConfigError: not allowed (checked before any import), not importable, not a
                class, not one of our exported model classes, or not a ``base`` subclass.
        """
        if not self.allows(class_path):
            raise ConfigError(
                f"{source}: class {class_path!r} is not allowed (allowed: the classes of {MODEL_PACKAGE} "
                "and classes named in the suite, recipe or --allow-class)"
            )
        assert isinstance(class_path, str)  # noqa: S101 - allows() checked it
        module_name, _, name = class_path.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError, ValueError):
            raise ConfigError(f"{source}: cannot import {class_path}") from None
        if not inspect.isclass(obj):
            raise ConfigError(f"{source}: {class_path} is not a class")
        if class_path not in self.explicit and obj not in _model_classes():
            raise ConfigError(f"{source}: {class_path} is not one of the classes {MODEL_PACKAGE} exports")
        if base is not None and not issubclass(obj, base):
            raise ConfigError(f"{source}: {class_path} is not a {base.__name__}")
        return obj

    def build(self, spec: Mapping[str, Any], *, source: str, base: type | None = None) -> Any:
        """Build ``{class_path, init_args}`` from a trusted config; nested specs in ``init_args`` too.

        Raises:
            ConfigError: see :meth:`resolve` and :meth:`instantiate`.
        """
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{source}: expected a mapping with class_path / init_args, got {type(spec).__name__}")
        cls = self.resolve(spec.get("class_path"), source=f"{source}.class_path", base=base)
        return self.instantiate(cls, spec.get("init_args"), source=source)

    def instantiate(self, cls: type, init_args: Any, *, source: str, **data: Any) -> Any:
        """``cls(**init_args, **data)``: nested specs in the (trusted) ``init_args`` are built first.

        ``data`` keyword arguments (e.g. a checkpoint's hyper-parameters, already checked
        with :meth:`refuse_objects`) are passed as they are, never resolved.

        Raises:
            ConfigError: ``init_args`` not a mapping, or the class rejects its arguments
                (``TypeError`` / ``ValueError`` / ``KeyError`` / ``AttributeError``), in one line.
        """
        init_args = init_args or {}
        if not isinstance(init_args, Mapping):
            raise ConfigError(f"{source}.init_args: expected a mapping, got {type(init_args).__name__}")
        args = {k: self._nested(v, f"{source}.init_args.{k}") for k, v in init_args.items()}
        try:
            return cls(**{**data, **args})
        except ConfigError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            first = (str(err).splitlines() or [""])[0]
            raise ConfigError(f"{source}: cannot build {cls.__module__}.{cls.__qualname__}: "
                              f"{type(err).__name__}: {first}") from None  # fmt: skip

    def _nested(self, value: Any, source: str) -> Any:
        if isinstance(value, Mapping) and "class_path" in value:
            return self.build(value, source=source)
        if isinstance(value, list):
            return [self._nested(v, f"{source}[{i}]") for i, v in enumerate(value)]
        return value

    def check_hyper_parameters(
        self, hparams: Any, *, source: str, skip: Iterable[str] = ()
    ) -> tuple[str | None, dict[str, Any]]:
        """A checkpoint's ``hyper_parameters`` as data: ``(allowed _class_path or None, values)``.

        LightningCLI's metadata keys (``_class_path``, ``_instantiator``, any ``_*``) are not
        passed on; ``_class_path`` must pass :meth:`allows` (a string check, nothing imported);
        every other value goes through :meth:`refuse_objects`. Keys in ``skip`` (overridden by
        the user's config) are dropped unexamined.

        Raises:
            ConfigError: not a mapping, a class not allowed, or an object in a value.
        """
        if not isinstance(hparams, Mapping):
            raise ConfigError(f"{source}: hyper_parameters is a {type(hparams).__name__}, not a mapping")
        class_path = hparams.get("_class_path")
        if class_path is not None and not self.allows(class_path):
            raise ConfigError(
                f"{source}: hyper_parameters._class_path: class {class_path!r} is not allowed (allowed: the "
                f"classes of {MODEL_PACKAGE} and classes named in the suite, recipe or --allow-class)"
            )
        skipped = set(skip)
        values = {k: v for k, v in hparams.items() if not str(k).startswith("_") and k not in skipped}
        self.refuse_objects(values, source=f"{source}: hyper_parameters")
        return class_path, values

    @staticmethod
    def refuse_objects(value: Any, *, source: str) -> None:
        """Raise when data from a file would build an object: a key of :data:`OBJECT_KEYS` at any depth.

        Raises:
            ConfigError: naming the key path, e.g. ``ckpt: hyper_parameters.config``.
        """
        stack: list[tuple[Any, str]] = [(value, source)]
        while stack:
            item, where = stack.pop()
            if isinstance(item, Mapping):
                for key, sub in item.items():
                    if key in OBJECT_KEYS:
                        raise ConfigError(f"{where}: holds {key!r}; values from a file are data, never objects")
                    stack.append((sub, f"{where}.{key}"))
            elif isinstance(item, (list, tuple)):
                stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
