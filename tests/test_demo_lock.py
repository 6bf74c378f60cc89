"""One demo per state folder: a second start is refused at once, naming the running one;
a demo that died leaves no lock that blocks the next start. No servers needed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sitewatch.programs.demo.run import LOCK_FILE
from sitewatch.programs.statelock import StateFolderBusy, StateLock

#: a stand-in for a running demo: takes the state folder's lock as the demo does, says
#: so, and waits to be killed
HOLDER = """
import sys, time
from pathlib import Path
from sitewatch.programs.statelock import StateLock
lock = StateLock(Path(sys.argv[1])).acquire()
lock.describe(address=sys.argv[2])
print("locked", flush=True)
time.sleep(120)
"""


def _holder(path: Path, address: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), address], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
    return proc


def test_the_lock_names_its_holder_and_is_released(tmp_path: Path) -> None:
    path = tmp_path / LOCK_FILE
    with StateLock(path) as first:
        first.describe(address="http://127.0.0.1:8123")
        with pytest.raises(StateFolderBusy) as busy:
            StateLock(path).acquire()
        assert (busy.value.pid, busy.value.address) == (os.getpid(), "http://127.0.0.1:8123")
        assert str(path) in str(busy.value)
    with StateLock(path):  # released: taken again
        pass


def test_a_second_demo_is_refused_before_it_writes_anything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    holder = _holder(state / LOCK_FILE, "http://127.0.0.1:8123")
    try:
        lock_text = (state / LOCK_FILE).read_text()
        started = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-m", "sitewatch.programs.cli", "demo", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.monotonic() - started
        assert r.returncode == 2, r
        assert f"pid {holder.pid}" in r.stderr and "API http://127.0.0.1:8123" in r.stderr
        assert f"kill {holder.pid}" in r.stderr and "--state-dir" in r.stderr
        assert took < 15, f"refused after {took:.1f} s"  # an interpreter start and imports
        # nothing of the running demo's is touched, nothing new is written
        assert [p.name for p in state.iterdir()] == [LOCK_FILE]
        assert (state / LOCK_FILE).read_text() == lock_text
        assert json.loads(lock_text) == {"pid": holder.pid, "address": "http://127.0.0.1:8123"}
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_demo_leaves_no_stale_lock(tmp_path: Path) -> None:
    """kill -9 (or a crash) cannot clean up: the file stays, but the kernel released
    the lock with the process, so the next start is not blocked."""
    path = tmp_path / LOCK_FILE
    holder = _holder(path, "http://127.0.0.1:8123")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert json.loads(path.read_text())["pid"] == holder.pid  # the file is still there
    with StateLock(path) as lock:
        lock.describe(address="http://127.0.0.1:9000")
        assert json.loads(path.read_text()) == {
            "pid": os.getpid(),
            "address": "http://127.0.0.1:9000",
        }


def test_children_do_not_inherit_the_lock(tmp_path: Path) -> None:
    """The demo's children (started with subprocess) outlive a demo killed with -9; they
    must not keep its state folder locked."""
    path = tmp_path / LOCK_FILE
    lock = StateLock(path).acquire()
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        close_fds=False,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # running Python: its exec is complete (close-on-exec descriptors are closed)
        assert child.stdout is not None and child.stdout.readline() == "up\n"
        lock.release()
        with StateLock(path):
            pass
    finally:
        child.kill()
        child.wait()
