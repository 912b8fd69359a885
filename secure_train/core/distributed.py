"""Process-group hygiene for callbacks that issue collectives.

Lightning destroys the process group at interpreter exit only for NCCL. With gloo (CPU
DDP), a collective issued just before a worker exits (a monitor's last cross-rank decision
in ``on_train_end``, say) can leave gloo's worker thread releasing that collective's tensor
while Python finalizes; the thread then needs the GIL, cannot have it, and the process
dies with ``terminate called without an active exception`` (SIGABRT). Destroying the
process group from an ``atexit`` handler, while the interpreter is still whole, lets the
worker threads finish first. Every callback of ours that communicates calls
:func:`destroy_process_group_at_exit` in ``setup``.

Example:
    >>> destroy_process_group_at_exit()  # no process group here: nothing to do
    False
"""

from __future__ import annotations

import atexit

import torch.distributed as dist

__all__ = ["destroy_process_group_at_exit"]

_registered = False


def _destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def destroy_process_group_at_exit() -> bool:
    """Register (once per process) an exit handler that destroys the default process group.

    Returns True when a handler is registered by this call or was already, False when no
    process group is initialized. Harmless when the group is destroyed earlier: the handler
    then does nothing.
    """
    global _registered
    if not (dist.is_available() and dist.is_initialized()):
        return False
    if not _registered:
        atexit.register(_destroy)
        _registered = True
    return True
