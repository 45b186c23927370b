"""The review page's queue with 100,000 open tickets: how long ``GET /queue`` takes, against the store read it needs.

    python3 bench/serve_queue.py                      # 100,000 open tickets in a SQLite store in a temp folder
    python3 bench/serve_queue.py --tickets 10000      # a smaller queue, for a quick look
    python3 bench/serve_queue.py --postgres           # the same on a throwaway PostgreSQL server (Debian's postgresql binaries)
    python3 bench/serve_queue.py --store postgresql://user@host/db   # an empty PostgreSQL database of your own

The tickets are written through the store's ticket queue (``queue_tickets=True``: the batching writer),
spread over 14 days, in 5 queues, half with a deadline, with inputs of realistic length. Each page is
fetched signed in, through Starlette's test client (the whole application: session, CSRF token,
template, security headers; no network). Timings are medians of 7 runs after one warm-up, printed beside
the baseline measured in the same run on the same store: ``list_tickets(status="open", limit=200)``,
the store read the default page makes, so the ratio is what the page adds to it.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE.parent / "tests")]

from failpath.core import Ticket  # noqa: E402
from failpath.serve import create_app, new_token, token_digest  # noqa: E402
from failpath.serve.app import QUEUE_PAGE_SIZE  # noqa: E402
from failpath.store import open_store  # noqa: E402

QUEUES = ("addresses", "refunds", "approvals", "support", "ops")


def fill(location: str, n: int) -> None:
    rng = random.Random(17)
    now = time.time()
    with open_store(location, queue_tickets=True) as store:
        for i in range(n):
            created = now - rng.uniform(0, 14 * 86400)
            store.create_ticket(Ticket(
                ticket_id=f"t-{i:08d}", queue=QUEUES[i % len(QUEUES)], created=created, policy="addresses",
                trace_id=None, input_preview=f"{rng.randint(1, 9999)} Main St, Apt {i % 90}, Springfield IL 6270{i % 10}",
                input_raw=None, output={"city": "Springfeld", "zip": "62701"}, confidence=rng.random(),
                state="low_confidence", deadline=created + rng.uniform(3600, 30 * 86400) if i % 2 else None,
            ))
        store.flush()


def median_ms(fn: Callable[[], Any], runs: int = 7) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--store", default=None, help="a postgresql:// URL of an empty database (default: a SQLite file)")
    parser.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL server and use it")
    args = parser.parse_args()
    server = None
    if args.postgres:
        from postgres_server import MISSING, ThrowawayServer, find_bin_dir

        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise SystemExit(MISSING)
        server = ThrowawayServer(bin_dir, fsync=True)
        args.store = server.url(server.create_database())
    try:
        run(args)
    finally:
        if server is not None:
            server.stop()


def run(args: argparse.Namespace) -> None:
    from starlette.testclient import TestClient

    with tempfile.TemporaryDirectory() as folder:
        location = args.store or str(Path(folder) / "queue.db")
        start = time.perf_counter()
        fill(location, args.tickets)
        print(f"{args.tickets:,} open tickets written in {time.perf_counter() - start:.1f} s ({location.split('@')[-1]})")
        with open_store(location) as store:
            token = new_token()
            store.add_reviewer("bench", token_digest(token))
            client = TestClient(create_app(store, secret_key="b" * 40), follow_redirects=False)
            csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/signin").text).group(1)
            assert client.post("/signin", data={"token": token, "csrf": csrf}).status_code == 303

            def page(**params: str) -> Callable[[], Any]:
                def fetch() -> None:
                    response = client.get("/queue", params=params)
                    assert response.status_code == 200 and response.text.count("<tr>") >= 2
                return fetch

            baseline = median_ms(lambda: store.list_tickets(status="open", limit=QUEUE_PAGE_SIZE))
            rows = [
                ("GET /queue (oldest 200 of all queues)", page()),
                ("GET /queue?queue=refunds", page(queue="refunds")),
                ("list_tickets(open, limit=200, order='deadline')",
                 lambda: store.list_tickets(status="open", limit=QUEUE_PAGE_SIZE, order="deadline")),
                ("GET /queue?sort=deadline (nearest deadline first)", page(sort="deadline")),
                ("GET /queue?sort=deadline&queue=refunds", page(sort="deadline", queue="refunds")),
            ]
            print(f"baseline list_tickets(status='open', limit={QUEUE_PAGE_SIZE}): {baseline:.1f} ms")
            for label, fn in rows:
                ms = median_ms(fn)
                print(f"{label:55s} {ms:8.1f} ms  {ms / baseline:6.1f}x baseline")


if __name__ == "__main__":
    main()
