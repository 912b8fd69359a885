"""Small command-line programs behind ``secure-train <command>``.

Every command builds its parser with :class:`ArgumentParser`: no option abbreviations
(``--publ`` is not ``--public-key``) and a usage error is one ``secure-train: error:`` line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

__all__ = ["ArgumentParser", "usage_error"]


def usage_error(prog: str, message: str) -> NoReturn:
    """Print ``secure-train: error: PROG: MESSAGE (see `PROG --help`)`` as one line and exit 2.

    Shared by every command's parser, the LightningCLI commands' included; a multi-line message
    (jsonargparse's) is joined into one line.

    Example:
        >>> usage_error("secure-train verify", "unrecognized arguments: --nope")
        Traceback (most recent call last):
        ...
        SystemExit: 2
    """
    line = " ".join(str(message).split())[:2000]
    print(f"secure-train: error: {prog}: {line} (see `{prog} --help`)", file=sys.stderr)
    sys.exit(2)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with ``allow_abbrev=False`` (sub-parsers inherit the class)
    and one-line usage errors, exit status 2.

    Example:
        >>> p = ArgumentParser(prog="secure-train demo")
        >>> _ = p.add_argument("--public-key")
        >>> p.allow_abbrev
        False
        >>> p.parse_args(["--public-key", "k.pub"]).public_key
        'k.pub'
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print ``secure-train: error: PROG: MESSAGE (see PROG --help)`` and exit 2 (:func:`usage_error`)."""
        usage_error(self.prog, message)
