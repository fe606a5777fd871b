"""One lock per data folder: two dl1 commands never write under the same folder at once.

``folder_lock(DIR, 'finetune')`` holds an exclusive ``fcntl.flock`` on ``DIR/.dl1-lock`` for the time
of the step and records the holder (pid, command, start time) in it; a second command on the same
folder stops at once with one line saying which process holds it. The kernel drops the lock when its
process dies, however it dies, so a killed run's lock file is taken over by the next run with no
stale-lock guessing. The lock is re-entrant within a process (a step that calls another step), and the
file is removed on release (checked by inode on acquiring, so a removal racing a new holder is safe).
"""

import contextlib
import json
import os
import threading
import time

from dl1.io.errors import BusyError

LOCK_NAME = ".dl1-lock"

_held = {}  # lock path -> [fd, depth] for the locks this process holds
_guard = threading.Lock()


def lock_path(folder):
    return os.path.join(os.path.abspath(os.fspath(folder)), LOCK_NAME)


def holder(folder):
    """``{'pid', 'command', 'started'}`` recorded in ``folder``'s lock file, or None."""
    try:
        with open(lock_path(folder), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _busy(folder, path):
    info = holder(folder) or {}
    pid, command = info.get("pid"), info.get("command")
    who = f"dl1 {command}" if isinstance(command, str) and command else "another dl1 command"
    since = ""
    if isinstance(info.get("started"), (int, float)):
        since = time.strftime(" since %H:%M:%S", time.localtime(info["started"]))
    pid_text = f" (pid {pid})" if isinstance(pid, int) and not isinstance(pid, bool) else ""
    return BusyError(f"{folder} is in use by {who}{pid_text}{since}: wait for it to finish (or stop it), "
                     f"then run again")


def _acquire(folder, path, command):
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(folder, path) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file its previous holder removed after we opened it
            break
        os.close(fd)
    record = json.dumps({"pid": os.getpid(), "command": command, "started": time.time()}).encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
    except OSError:  # a full disk: the lock holds all the same, a second run just cannot name its holder
        pass
    return fd


def _release(path, fd):
    import fcntl

    with contextlib.suppress(OSError):
        os.remove(path)  # while still locked: nobody can take a file that is about to vanish
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextlib.contextmanager
def folder_lock(folder, command, enabled=True):
    """Hold ``folder``'s lock while the block runs (``command`` is what a second run is told, e.g.
    ``'finetune'``). Raises ``BusyError`` (one line) when another process holds it. Nothing is locked
    when ``enabled`` is false (the non-writing ranks of a torchrun job), when ``folder`` does not exist
    (the step says so itself), or when it cannot hold a lock file (a read-only folder: nothing can be
    written there either); so is a platform without ``fcntl``."""
    folder = os.fspath(folder)
    path = lock_path(folder)
    if not enabled or not os.path.isdir(folder):
        yield None
        return
    try:
        import fcntl  # noqa: F401
    except ImportError:  # Windows
        yield None
        return
    with _guard:
        entry = _held.get(path)
        if entry is not None:
            entry[1] += 1
        else:
            try:
                fd = _acquire(folder, path, command)
            except BusyError:
                raise
            except OSError:  # read-only or foreign folder: the writes themselves will say why they fail
                fd = None
            entry = _held[path] = [fd, 1]
    try:
        yield path
    finally:
        with _guard:
            entry[1] -= 1
            if entry[1] == 0:
                del _held[path]
                if entry[0] is not None:
                    _release(path, entry[0])
