"""``secure-train keygen``: write an EC signing key pair (P-256 by default), out of the work tree.

By default the private key goes to the per-user key directory (``$SECURE_TRAIN_KEY_DIR``, else
``$XDG_CONFIG_HOME/secure-train/keys``, else ``~/.config/secure-train/keys``; created mode 0700)
as ``NAME.pem`` (mode 0600) with ``NAME.pub`` beside it. A private key is never written inside
a git work tree (where one ``git add`` publishes it) unless ``--force`` is given; the public
key may go anywhere (``--public-out keys/project.pub``).

Example::

    secure-train keygen --name project --public-out keys/project.pub
"""

from __future__ import annotations

import os
from pathlib import Path

from secure_train.commands import ArgumentParser
from secure_train.core.errors import ConfigError
from secure_train.core.keys import (
    CURVES,
    DEFAULT_PASSPHRASE_ENV,
    generate_keypair,
    key_fingerprint,
    load_public_key,
)

__all__ = ["KEY_DIR_ENV", "default_key_dir", "git_work_tree", "main"]

KEY_DIR_ENV = "SECURE_TRAIN_KEY_DIR"
"""Environment variable naming the per-user key directory."""


def default_key_dir() -> Path:
    """``$SECURE_TRAIN_KEY_DIR``, else ``$XDG_CONFIG_HOME/secure-train/keys``, else ``~/.config/secure-train/keys``."""
    if os.environ.get(KEY_DIR_ENV):
        return Path(os.environ[KEY_DIR_ENV]).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join("~", ".config")
    return Path(config).expanduser() / "secure-train" / "keys"


def git_work_tree(path: str | os.PathLike[str]) -> Path | None:
    """The root of the git work tree containing ``path`` (which need not exist yet), or None."""
    p = Path(os.path.abspath(Path(path).expanduser()))
    for parent in (p, *p.parents):
        if (parent / ".git").exists():
            return parent
    return None


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="secure-train keygen",
        description="Write a private key (mode 0600, PEM; encrypted when the passphrase variable is set) "
        f"and its public key. Default: NAME.pem / NAME.pub in ${KEY_DIR_ENV} or ~/.config/secure-train/keys.",
    )
    parser.add_argument("--name", default="signing-key", help="key name in the key directory (default: signing-key)")
    parser.add_argument(
        "--out", default=None, help="private key file instead of KEY_DIR/NAME.pem (its folder must exist)"
    )
    parser.add_argument("--public-out", default=None, help="public key file (default: <private key without .pem>.pub)")
    parser.add_argument("--curve", choices=sorted(CURVES), default="P-256")
    parser.add_argument(
        "--passphrase-env",
        default=DEFAULT_PASSPHRASE_ENV,
        help=f"environment variable holding a passphrase (default: {DEFAULT_PASSPHRASE_ENV}); unset: no encryption",
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite existing files; allow a private key inside a git work tree"
    )
    return parser


def _key_dir() -> Path:
    """The default key directory, created mode 0700."""
    d = default_key_dir()
    if not d.is_dir():
        try:
            d.mkdir(mode=0o700, parents=True)
            os.chmod(d, 0o700)  # mkdir's mode is masked by the umask
        except OSError as err:
            raise ConfigError(f"cannot create the key directory {d}: {err.strerror}") from None
    return d


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if os.sep in args.name or args.name in ("", ".", ".."):
        raise ConfigError(f"--name must be a plain file name, got {args.name!r}")
    if args.out is not None:
        out = Path(args.out).expanduser()
        if not out.parent.is_dir():
            raise ConfigError(f"--out {out}: folder {out.parent} does not exist; create it first")
    else:
        out = _key_dir() / f"{args.name}.pem"
    public = Path(args.public_out) if args.public_out else out.with_name(out.name.removesuffix(".pem") + ".pub")
    if not public.parent.is_dir():
        raise ConfigError(f"--public-out {public}: folder {public.parent} does not exist; create it first")
    tree = git_work_tree(out.parent)
    if tree is not None and not args.force:
        raise ConfigError(
            f"refusing to write a private key inside the git work tree {tree} ({out}); "
            f"use the default key directory (${KEY_DIR_ENV}), --out outside the repository, or --force"
        )
    priv, pub = generate_keypair(out, public, args.passphrase_env, curve=args.curve, overwrite=args.force)
    print(f"private key: {priv} (mode 0600)")
    print(f"public key:  {pub}")
    print(f"fingerprint: {key_fingerprint(load_public_key(pub))}")
    return 0
