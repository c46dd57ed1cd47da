"""The exclusive lock a job holds on a feature store folder while it writes it.

:class:`StoreLock` is a ``.lock`` file created with ``O_EXCL`` that names its
owner; a lock left by a dead process on this host is stale and taken over.
"""

import json
import os
import socket
import time
import uuid
from pathlib import Path

from featpipe.store.format import LOCK_NAME, StoreError, disk_error


def _process_is_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


class StoreLock:
    """An exclusive lock on a store folder, held by one job at a time.

    The lock is a file created with ``O_EXCL`` that names its owner (host,
    pid, start time). A lock whose owner ran on this host and has died
    (SIGKILL, power cut of a container) is stale and is taken over; any
    other lock makes :meth:`acquire` raise :class:`StoreError`.

    Parameters
    ----------
    store_dir : path-like
        The store folder (it must exist).
    """

    def __init__(self, store_dir):
        self.store_dir = store_dir

    @property
    def path(self):
        return Path(self.store_dir) / LOCK_NAME

    def _owner_text(self):
        return json.dumps({
            "host": socket.gethostname(), "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "token": uuid.uuid4().hex,
        })

    def _refusal(self, owner):
        return StoreError(
            f"store {self.store_dir} is locked by another job (pid {owner.get('pid')} on "
            f"{owner.get('host')}, started {owner.get('started')}); wait for it to finish, or delete "
            f"{self.path} if no job is running"
        )

    def _is_stale(self, owner):
        return owner.get("host") == socket.gethostname() and not _process_is_alive(int(owner.get("pid", -1)))

    def _take_over(self, owner_text):
        """Remove a stale lock unless another job replaced it meanwhile."""
        moved = self.path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, moved)
        except FileNotFoundError:
            return
        if moved.read_text() != owner_text:
            try:
                os.link(moved, self.path)
            finally:
                moved.unlink()
            raise self._refusal(json.loads(self.path.read_text()))
        moved.unlink()

    def holder(self):
        """The owner (host, pid, started) of a lock held by a live job, or None when free or stale."""
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return None if not isinstance(owner, dict) or self._is_stale(owner) else owner

    def acquire(self):
        """Take the lock, taking over a stale one; raise StoreError when it is held."""
        for _ in range(3):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    owner_text = self.path.read_text()
                    owner = json.loads(owner_text)
                except FileNotFoundError:
                    continue
                except ValueError:
                    raise StoreError(f"store {self.store_dir} has an unreadable lock file {self.path}; "
                                     "delete it if no job is running") from None
                if not self._is_stale(owner):
                    raise self._refusal(owner) from None
                self._take_over(owner_text)
                continue
            except OSError as error:
                raise disk_error(self.path, error) from None
            with os.fdopen(descriptor, "w") as file:
                file.write(self._owner_text())
            return self
        raise StoreError(f"could not lock store {self.store_dir}: other jobs keep taking the lock")

    def release(self):
        """Drop the lock."""
        self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()
