"""The ``secure-train`` command line.

``fit`` / ``validate`` / ``test`` / ``predict`` run LightningCLI with YAML recipes
(``class_path`` / ``init_args``); every run gets an :class:`~secure_train.monitors.AuditTrail`
writing ``<log_dir>/audit.jsonl``. The other commands (``audit verify``, ...) are small
programs registered in :data:`COMMANDS`; they start without importing Lightning or torch
(the LightningCLI class lives in :mod:`secure_train.commands.lightning_cli`).

Bad user input (a data file, a config value, a key) and hostile files (a YAML bomb, random
bytes, a huge or sparse file, a missing folder, a pickle) end with one ``secure-train: error:``
line and exit status 2, never a traceback; ``secure-train --debug COMMAND ...`` (or
``SECURE_TRAIN_DEBUG=1``) prints the traceback too. No command accepts an abbreviated option.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from secure_train.core.errors import SecureTrainError

if TYPE_CHECKING:
    from secure_train.commands.lightning_cli import SecureTrainCLI

__all__ = ["COMMANDS", "LIGHTNING_COMMANDS", "SecureTrainCLI", "main"]

COMMANDS: dict[str, str] = {
    "audit": "secure_train.commands.audit",
    "data": "secure_train.commands.data",
    "scan": "secure_train.commands.scan",
    "keygen": "secure_train.commands.keygen",
    "verify": "secure_train.commands.verify",
    "export": "secure_train.commands.export",
    "gate": "secure_train.commands.gate",
    "approve": "secure_train.commands.approve",
    "drift": "secure_train.commands.drift",
    "diff-train": "secure_train.commands.diff_train",
    "report": "secure_train.commands.report",
    "incident": "secure_train.commands.incident",
    "detector": "secure_train.commands.detector",
}
"""Command name -> module with ``main(argv: list[str]) -> int``."""

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
"""Subcommands run by :class:`~secure_train.commands.lightning_cli.SecureTrainCLI` (these import Lightning)."""

DEBUG_ENV = "SECURE_TRAIN_DEBUG"
_CONFIG_SUFFIXES = (".yaml", ".yml")
"""Other command-line values checked like ``--config`` files: jsonargparse reads a YAML file given
as a value (``--model model.yaml``); ``.json`` is left alone, as data files use it too."""


def __getattr__(name: str) -> Any:
    # SecureTrainCLI and TRAINER_DEFAULTS moved to secure_train/commands/lightning_cli.py (they import Lightning)
    if name in ("SecureTrainCLI", "TRAINER_DEFAULTS"):
        return getattr(importlib.import_module("secure_train.commands.lightning_cli"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _error(message: str) -> int:
    line = " ".join(str(message).split()) or "unknown error"
    print(f"secure-train: error: {line[:2000]}", file=sys.stderr)
    return 2


def _from_torch_load(err: BaseException) -> bool:
    """Whether ``err`` was raised inside ``torch.load`` (a corrupt or hostile checkpoint)."""
    return any(
        frame.filename.replace(os.sep, "/").endswith("torch/serialization.py")
        for frame in traceback.extract_tb(err.__traceback__)
    )


def _describe(err: BaseException) -> str | None:
    """One line for the exceptions a hostile or broken file raises; ``None`` for anything else (a bug)."""
    import pickle  # noqa: S403 - only for the exception type

    if isinstance(err, (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
        target = err.filename if err.filename is not None else ""
        return f"{target}: {err.strerror or err}" if target else str(err)
    if isinstance(err, UnicodeDecodeError):
        return f"input is not UTF-8 text (byte {err.start}: {err.reason})"
    if isinstance(err, MemoryError):
        return "out of memory reading the input (a file too large or hostile?)"
    if isinstance(err, RecursionError):
        return "input nested too deeply"
    if isinstance(err, pickle.UnpicklingError):
        return f"not a loadable checkpoint (refused by the safe unpickler: {str(err).splitlines()[0][:300]})"
    if isinstance(err, OSError):
        target = f"{err.filename}: " if err.filename is not None else ""
        return f"{target}{err.strerror or err}"
    if type(err).__name__ == "Error" and type(err).__module__ == "_csv":
        return f"malformed CSV/TSV input ({err})"
    yaml = sys.modules.get("yaml")
    if yaml is not None and isinstance(err, yaml.YAMLError):
        return f"not valid YAML ({err})"
    if isinstance(err, (RuntimeError, ValueError, EOFError)) and _from_torch_load(err):
        return f"not a loadable checkpoint ({str(err).splitlines()[0][:300] if str(err) else type(err).__name__})"
    return None


def _check_config_files(args: Sequence[str]) -> None:
    """Size-, UTF-8- and YAML-bomb-check every ``--config`` file and every YAML/JSON file named
    on the command line before Lightning is imported and jsonargparse reads it whole."""
    from secure_train.core.safe_io import MAX_YAML_BYTES, check_yaml, read_text

    for i, arg in enumerate(args):
        value = None
        if arg in ("-c", "--config") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        elif arg.lower().endswith(_CONFIG_SUFFIXES) and os.path.exists(arg):
            value = arg
        elif "=" in arg and arg.lower().endswith(_CONFIG_SUFFIXES) and os.path.exists(arg.split("=", 1)[1]):
            value = arg.split("=", 1)[1]
        if value is not None and value != "-":
            check_yaml(read_text(value, what="config", max_bytes=MAX_YAML_BYTES), source=f"config {value}")


def _run_lightning(args: list[str], cli_args: list[str] | None) -> None:
    _check_config_files(args)
    import secure_train
    from secure_train.commands.lightning_cli import SecureTrainCLI

    for name in secure_train.__all__:  # import every public class, as before: short class names resolve
        getattr(secure_train, name)
    SecureTrainCLI(args=cli_args)  # bounded YAML loader, no abbreviations: see SecureTrainCLI.__init__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``secure-train`` console script.

    ``secure-train --debug COMMAND ...`` shows the traceback behind an error line.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    while args and args[0] == "--debug":
        debug, args = True, args[1:]
    cli_args = None if argv is None and len(args) == len(sys.argv) - 1 else args
    if "WANDB_API_KEY" not in os.environ:
        os.environ.setdefault("WANDB_MODE", "offline")
    try:
        if args and args[0] in COMMANDS:
            module = importlib.import_module(COMMANDS[args[0]])
            return int(module.main(args[1:]))
        if not args or args[0] in ("-h", "--help"):
            print(
                "secure-train [--debug] COMMAND: fit, validate, test, predict (LightningCLI, below); "
                f"{', '.join(COMMANDS)} (`secure-train COMMAND --help`)\n"
            )
        _run_lightning(args, cli_args)
        return 0
    except SecureTrainError as err:
        if debug:
            traceback.print_exc()
        return _error(str(err))
    except KeyboardInterrupt:
        return _error("interrupted")
    except Exception as err:
        message = _describe(err)
        if message is None:
            raise
        if debug:
            traceback.print_exc()
        return _error(message)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
