"""One exclusive lock per output (a corpus being written, a training run folder).

flock, not a marker file: the kernel releases it when the holder dies, so a killed run leaves no
stale lock. The holder's pid is written into the lock file for the message of whoever is refused."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO


class LockHeld(Exception):
    def __init__(self, owner: str):
        super().__init__(owner)
        self.owner = owner


def exclusive_lock(path: Path) -> IO:
    """The open, locked file at `path` (keep it open to keep the lock); LockHeld(pid) if another
    process holds it; OSError if the file cannot be created."""
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise LockHeld(owner) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
