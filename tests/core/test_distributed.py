"""The exit handler that destroys a gloo process group before Python finalizes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch.distributed as dist

import secure_train.core.distributed as sd


def test_registers_once_and_destroys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[Callable[[], None]] = []
    monkeypatch.setattr(sd.atexit, "register", registered.append)
    monkeypatch.setattr(sd, "_registered", False)
    assert sd.destroy_process_group_at_exit() is False  # no group yet: nothing registered
    assert registered == []
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert sd.destroy_process_group_at_exit() is True
        assert sd.destroy_process_group_at_exit() is True
        assert registered == [sd._destroy]  # once per process, however many callbacks ask
        registered[0]()
        assert not dist.is_initialized()
        registered[0]()  # already destroyed: a no-op, not an error
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
