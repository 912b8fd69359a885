"""The environment an incident is opened in: packages, torch / CUDA, git state, host, time.

Example:
    >>> env = EnvironmentSnapshot.capture()
    >>> "torch" in env.packages and env.python.count(".") >= 2
    True
"""

from __future__ import annotations

import platform
import shutil
import socket
import subprocess  # noqa: S404 - fixed argv, no shell
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

__all__ = ["EnvironmentSnapshot"]


def _git(args: list[str], cwd: str | None) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv
            [git, *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@dataclass(frozen=True)
class EnvironmentSnapshot:
    """What ran: ``pip freeze`` (via :mod:`importlib.metadata`), torch and CUDA, git commit and
    dirty state, host name, platform and time (UTC).

    Attributes:
        packages: ``{name: version}`` of every installed distribution.
        git_dirty_files: paths ``git status --porcelain`` lists (tracked files only), at most 200.
    """

    time: str
    hostname: str
    platform: str
    python: str
    torch: str | None
    cuda: str | None
    cuda_available: bool
    git_commit: str | None
    git_dirty: bool | None
    git_dirty_files: list[str] = field(default_factory=list)
    packages: dict[str, str] = field(default_factory=dict)

    @classmethod
    def capture(cls, cwd: str | None = None) -> EnvironmentSnapshot:
        """Snapshot the current process's environment (git state of ``cwd``, default the working directory)."""
        packages = {}
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if name:
                packages[str(name)] = str(dist.version)
        torch_version = cuda = None
        cuda_available = False
        if "torch" in sys.modules or "torch" in packages:
            import torch

            torch_version, cuda = torch.__version__, torch.version.cuda
            cuda_available = bool(torch.cuda.is_available())
        commit = _git(["rev-parse", "HEAD"], cwd)
        status = _git(["status", "--porcelain", "--untracked-files=no"], cwd) if commit else None
        dirty_files = [line[3:] for line in (status or "").splitlines() if line.strip()]
        return cls(
            time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            hostname=socket.gethostname(),
            platform=platform.platform(),
            python=platform.python_version(),
            torch=torch_version,
            cuda=cuda,
            cuda_available=cuda_available,
            git_commit=commit,
            git_dirty=None if commit is None else bool(dirty_files),
            git_dirty_files=dirty_files[:200],
            packages=dict(sorted(packages.items(), key=lambda kv: kv[0].lower())),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def pip_freeze(self) -> str:
        """``name==version`` lines, like ``pip freeze``."""
        return "".join(f"{k}=={v}\n" for k, v in self.packages.items())
