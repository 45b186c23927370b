"""What a SIGKILL costs: traces lost per kill of a process making guarded calls from 8 threads.

    python3 bench/kill_loss.py                   # 10 kills, 8 threads, SQLite store
    python3 bench/kill_loss.py --kills 3 --json  # fewer kills, figures as JSON

Each trial starts a process whose threads make guarded calls as fast as they can (every seventh call
is escalated: its ticket is written synchronously, with its trace), lets it run for a warm-up plus a
random part of a second, and kills it with SIGKILL. Each thread counts the calls that returned in a
shared memory-mapped file, so the parent knows exactly how many outcomes the callers had been given.
Then it reads the store: the traces lost are the calls that returned minus the traces stored; the
tickets whose trace is missing are counted too (it must be 0: a ticket's trace is written with it).

The store's promise is a bound, not a figure: what is lost is what was queued since the writer's last
commit, at most ``max_pending + batch_size``. This measures what that is in practice, with the
writer's defaults (``flush_interval=0.05``, ``batch_size=256``).
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import random
import signal
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

SLOT = struct.Struct("<q")


def child(store: str, counters: str, threads: int) -> None:
    """Guarded calls from ``threads`` threads until killed; thread t counts its returned calls in slot t."""
    import failpath as fp

    policy = fp.Policy(
        "kill-loss",
        rules=[
            fp.on(fp.LowConfidence(below=0.8)).do(fp.Escalate(queue="review")),
            fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
        ],
        store=store,
    )

    def system(text: str) -> fp.Prediction:
        return fp.Prediction(text.upper(), confidence=0.5 if text.endswith("7") else 0.99)

    guarded = policy.wrap(system, name="upper")
    with open(counters, "r+b") as file:
        shared = mmap.mmap(file.fileno(), threads * SLOT.size)

    def work(t: int) -> None:
        i = 0
        while True:
            guarded(f"thread {t} call {i}")
            i += 1
            SLOT.pack_into(shared, t * SLOT.size, i)

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    print("started", flush=True)
    for worker in workers:
        worker.join()


def returned(counters: Path, threads: int) -> int:
    data = counters.read_bytes()
    return sum(SLOT.unpack_from(data, t * SLOT.size)[0] for t in range(threads))


def trial(folder: Path, threads: int, warmup: int, rng: random.Random) -> dict[str, int]:
    """One kill: the calls that had returned, the traces stored, the traces lost, tickets, tickets without trace."""
    store = folder / "kill.db"
    counters = folder / "counters"
    counters.write_bytes(b"\0" * threads * SLOT.size)
    process = subprocess.Popen([sys.executable, __file__, "--child", str(store), str(counters), str(threads)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "started", process.stderr
        deadline = time.monotonic() + 120
        while returned(counters, threads) < warmup and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    calls = returned(counters, threads)
    connection = sqlite3.connect(store)
    try:
        stored = connection.execute("SELECT count(*) FROM traces").fetchone()[0]
        tickets = connection.execute("SELECT count(*) FROM tickets").fetchone()[0]
        orphans = connection.execute(
            "SELECT count(*) FROM tickets WHERE trace_id NOT IN (SELECT trace_id FROM traces)"
        ).fetchone()[0]
    finally:
        connection.close()
    for extra in folder.iterdir():
        extra.unlink()
    return {"returned": calls, "stored": stored, "lost": max(0, calls - stored), "tickets": tickets,
            "tickets_without_trace": orphans}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3000, help="calls returned before the kill may come")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("STORE", "COUNTERS", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="failpath-kill-") as folder:
        trials = [trial(Path(folder), args.threads, args.warmup, rng) for _ in range(args.kills)]
    lost = [t["lost"] for t in trials]
    summary = {
        "kills": len(trials), "threads": args.threads,
        "lost_min": min(lost), "lost_median": statistics.median(lost), "lost_max": max(lost),
        "lost_share_max": max(t["lost"] / max(t["returned"], 1) for t in trials),
        "tickets_without_trace": sum(t["tickets_without_trace"] for t in trials),
        "trials": trials,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{args.kills} SIGKILLs of a process making guarded calls from {args.threads} threads (SQLite store)")
    print(f"{'trial':>5} {'returned':>9} {'stored':>9} {'lost':>6} {'tickets':>8} {'ticket w/o trace':>17}")
    for i, t in enumerate(trials, 1):
        print(f"{i:>5} {t['returned']:>9} {t['stored']:>9} {t['lost']:>6} {t['tickets']:>8} {t['tickets_without_trace']:>17}")
    print(f"traces lost per kill: min {summary['lost_min']}, median {summary['lost_median']:g}, max {summary['lost_max']} "
          f"(at most {summary['lost_share_max']:.1%} of the calls of a trial); tickets without their trace: "
          f"{summary['tickets_without_trace']}")


if __name__ == "__main__":
    main()
