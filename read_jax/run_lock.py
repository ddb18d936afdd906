"""One owner per experiment directory: ``run.lock`` holds the owner's pid and host.

Why: two runs writing one directory interleave checkpoints and histories into a result that is
neither run, and nothing downstream can tell.  The lock is created atomically (``O_EXCL``); a
lock left by a process that died (``kill -9``, a preempted VM that came back) is taken over with
a message when its pid is gone on this host.  On another host liveness cannot be checked, so the
error says which file to delete once that run is known to be gone.  In a multi-process run only
process 0 takes it: the other processes write no run files.  A bucket directory (gs://) gets no lock:
an object store offers no atomic create-if-absent through the file API.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from read_jax.distributed import is_primary
from read_jax.errors import ReadJaxError
from read_jax.run_files import is_url

LOCK_FILE = "run.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """Hold ``DIR/run.lock`` from `acquire` to `release` (idempotent both)."""

    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory) / LOCK_FILE
        self.held = False
        # an object store (gs://...) has no atomic create-if-absent through the file API: no lock there
        self.enabled = not is_url(directory)

    def check(self) -> None:
        """Fail now, before any work, when a live run owns the directory (taking nothing yet)."""
        owner = self._owner() if self.enabled else None
        if owner is not None and not self._stale(owner):
            raise self._busy(owner)

    def acquire(self) -> None:
        if self.held or not self.enabled or not is_primary():
            return
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and not self._stale(owner):
                    raise self._busy(owner) from None
                print(f"read-jax: taking over {self.path} from process {owner.get('pid') if owner else '?'}, "
                      "which is gone", file=sys.stderr)
                self.path.unlink(missing_ok=True)
                continue
            except OSError as err:
                raise ReadJaxError(f"{self.path}: cannot create the run lock ({os.strerror(err.errno)}); "
                                   "choose another --out") from None
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(me, f)
            except OSError as err:  # a full disk: no half-written lock left behind
                self.path.unlink(missing_ok=True)
                raise ReadJaxError(f"{self.path}: cannot write the run lock ({os.strerror(err.errno)}); free space "
                                   "or choose another --out") from None
            self.held = True
            return
        raise ReadJaxError(f"{self.path}: could not take the run lock; another run keeps taking it")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def _owner(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable (a kill between create and write): nobody can own it

    @staticmethod
    def _stale(owner: dict) -> bool:
        if "pid" not in owner:
            return True
        if owner.get("host") == socket.gethostname() and int(owner["pid"]) == os.getpid():
            return True  # left by an experiment object of this very process that never ran to its end
        return owner.get("host") == socket.gethostname() and not _alive(int(owner["pid"]))

    def _busy(self, owner: dict) -> ReadJaxError:
        if owner.get("host") == socket.gethostname():
            return ReadJaxError(f"{self.path.parent}: another read-jax run (pid {owner['pid']}) is using this "
                                "directory; wait for it to finish or choose another --out")
        return ReadJaxError(f"{self.path.parent}: a read-jax run on host {owner.get('host')} (pid {owner.get('pid')}) "
                            f"holds {self.path}; if that run is gone, delete the file and resume")
