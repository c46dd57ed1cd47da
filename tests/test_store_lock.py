"""The store's exclusive lock: a second job refuses, a dead job's lock is taken over, another host's is not."""

import json
import os
import socket
import subprocess
import sys

import pytest

from featpipe.store.format import LOCK_NAME, StoreError
from featpipe.store.lock import StoreLock


def test_second_lock_refuses_and_names_the_owner(tmp_path):
    with StoreLock(tmp_path):
        owner = json.loads((tmp_path / LOCK_NAME).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(StoreError, match=f"locked by another job \\(pid {os.getpid()}"):
            StoreLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_NAME).exists()
    StoreLock(tmp_path).acquire().release()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)
    (tmp_path / LOCK_NAME).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": dead_pid, "started": "then", "token": "t"}))
    with StoreLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_lock_held_on_another_host_is_not_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps(
        {"host": "elsewhere-" + socket.gethostname(), "pid": 1, "started": "then", "token": "t"}))
    with pytest.raises(StoreError, match="on elsewhere-"):
        StoreLock(tmp_path).acquire()
