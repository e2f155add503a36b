"""One writer per output: an advisory lock file beside it (``<out>.lock``, ``flock``).

The lock is taken before anything about the output is checked or touched and held until the
run ends; the kernel drops it when the process dies (even by SIGKILL), so a killed run never
leaves a stale lock. The lock file holds the writer's pid for messages and ``tme info``
(RUNNING). It is unlinked on release; a writer that locked a file that was unlinked meanwhile
notices (the inode at the path differs) and locks again.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

from tme_sim.errors import OutputError


def lock_path(out: Path) -> Path:
    """The lock file of output ``out``."""
    return out.with_name(out.name + ".lock")


class OutputLock:
    """Exclusive lock of output ``out`` for this process; raises :class:`OutputError` if held."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = lock_path(self.out)
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot create the output's lock file ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    pid = holder(self.out)
                    who = f" (pid {pid})" if pid else ""
                    raise OutputError(
                        f"{self.out}: another tme run is writing it{who}; wait for it or choose another --out"
                    ) from None
                raise OutputError(f"{self.path}: cannot lock ({exc.strerror})") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder unlinked the file between our open and flock
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
            return self
        raise OutputError(f"{self.path}: could not take the output's lock")  # pragma: no cover

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:  # pragma: no cover - read-only folder after the run started
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def holder(out: str | Path) -> int | None:
    """Pid of the process writing ``out`` now (its lock is held), or None when no run writes it."""
    path = lock_path(Path(out))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
