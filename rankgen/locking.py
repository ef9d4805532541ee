"""One exclusive lock per output (a corpus being written, a training run folder).

flock, not a marker file: the kernel releases it when the holder dies, so a killed run leaves no
stale lock. The holder's pid is written into the lock file for the message of whoever is refused.

A forked child (a pool worker) shares its parent's open files, so it shares this flock and HDF5's
own lock on the file being written: a child still busy after its parent was killed would keep both,
and the re-run would be refused until the child's job ended. Children call `die_with_parent`."""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import sys
from pathlib import Path
from typing import IO


class LockHeld(Exception):
    def __init__(self, owner: str):
        super().__init__(owner)
        self.owner = owner


_ATTEMPTS = 10


def _still_at(path: Path, handle: IO) -> bool:
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def exclusive_lock(path: Path) -> IO:
    """The open, locked file at `path` (keep it open to keep the lock); LockHeld(pid) if another
    process holds it; OSError if the file cannot be created."""
    for attempt in range(_ATTEMPTS):
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            handle.close()
            raise LockHeld(owner) from None
        # A holder unlinks the file as it lets go: a file opened before that and locked after it is no
        # longer at `path`, and its lock guards nothing (a third process may lock a new file there).
        # The last try keeps its lock, so a file system whose stat never matches fstat cannot loop.
        if _still_at(path, handle) or attempt + 1 == _ATTEMPTS:
            break
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """In a forked child of process `parent`: be killed when the parent dies (Linux), and exit now if
    it already has. Elsewhere a no-op: the child then lives until its job ends."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)
