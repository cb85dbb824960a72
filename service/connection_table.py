"""How many connections each API process holds, in a small file all of them map.

A row per process: its pid, the connections it has open, and how many it has been handed so
far. A process claims a free row once it serves (under an `flock`, so two starting at once
never share one) and writes only its own row; the supervisor reads them to hand each new
connection to the least loaded process (service/processes.py). A row whose pid has exited
is free again: a process that crashed leaves no lasting claim.
"""

import fcntl
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

ROWS = 64
_ROW = struct.Struct("<qqq")  # pid, open connections, connections adopted so far
SIZE = ROWS * _ROW.size


class TableFull(RuntimeError):
    """Every row is held by a live process."""


@dataclass(frozen=True)
class Load:
    open: int
    adopted: int


class ConnectionTable:
    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        self._path = path
        self._row: int | None = None

    @classmethod
    def create(cls, path: Path) -> "ConnectionTable":
        """A fresh, empty table (before any process claims a row)."""
        path.write_bytes(bytes(SIZE))
        return cls(path)

    def claim(self) -> None:
        """Take a free row for this process: from now on it is handed connections."""
        pid = os.getpid()
        with self._path.open("rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for row in range(ROWS):
                holder = _ROW.unpack_from(self._map, row * _ROW.size)[0]
                if holder in (0, pid) or not _alive(holder):
                    _ROW.pack_into(self._map, row * _ROW.size, pid, 0, 0)
                    self._row = row
                    return
        raise TableFull(f"all {ROWS} rows of {self._path} are held by live processes")

    def publish(self, load: Load) -> None:
        if self._row is not None:
            _ROW.pack_into(self._map, self._row * _ROW.size, os.getpid(), load.open, load.adopted)

    def release(self) -> None:
        if self._row is not None:
            _ROW.pack_into(self._map, self._row * _ROW.size, 0, 0, 0)
            self._row = None

    def loads(self) -> dict[int, Load]:
        """Every serving process's load, by pid."""
        rows = (_ROW.unpack_from(self._map, r * _ROW.size) for r in range(ROWS))
        return {pid: Load(n, adopted) for pid, n, adopted in rows if pid and _alive(pid)}

    def close(self) -> None:
        self._map.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
