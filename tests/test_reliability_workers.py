"""Worker processes of a process run end when their parent is killed (item 6 of the reliability issue).

The parent is stopped inside a chunk of its own, so its worker finishes what it holds and waits, idle, for
the next chunk; then the parent gets SIGKILL. The worker must not wait forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process parents from /proc")

SCRIPT = """
import multiprocessing, os, sys, time
import failpath as fp
from failpath.core import Case

MARK = sys.argv[2]

def system(text):
    if multiprocessing.parent_process() is None:
        open(MARK, "w").write(str(os.getpid()))
        time.sleep(600)  # the parent stops here: its worker runs out of chunks and waits for the next one
    return text.upper()

if __name__ == "__main__":
    cases = [Case(id=f"c{i:02d}", input=f"item {i:02d}", expected=f"ITEM {i:02d}") for i in range(60)]
    fp.check(system, cases, store=sys.argv[1], suites=[], executor="process", concurrency=3, quiet=True,
             worst_cases=0)
"""


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_an_idle_worker_exits_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    mark = tmp_path / "parent.pid"
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "store.db"), str(mark)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not mark.exists() and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.05)
        assert mark.exists(), parent.communicate(timeout=10)
        time.sleep(1.5)  # the worker finishes the chunks it holds and waits for another
        workers = children(parent.pid)
        assert workers, "the run started no worker process"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in workers if alive(pid)]
        assert not left, f"worker processes {left} outlived their killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_started_after_its_parent_died_exits_at_once(monkeypatch):
    from failpath.check import processes

    exits = []
    monkeypatch.setattr(os, "_exit", lambda code: exits.append(code))
    processes.die_with_parent(os.getppid() + 1_000_000)  # not our parent: it is gone
    assert exits == [3]


def test_an_idle_worker_watches_its_parent_where_the_kernel_cannot(monkeypatch):
    import queue

    from failpath.check import processes

    class Gone(Exception):
        pass

    def leave(code):
        raise Gone(code)

    monkeypatch.setattr(processes, "PARENT_POLL", 0.01)
    monkeypatch.setattr(os, "_exit", leave)
    tasks: queue.Queue = queue.Queue()
    with pytest.raises(Gone):
        processes._next_task(tasks, os.getppid() + 1_000_000)
    tasks.put("chunk")
    assert processes._next_task(tasks, os.getppid()) == "chunk"
