"""The HTML report in headless Chromium: it renders, runs no script, and fetches nothing.

Skipped when Chromium is not installed (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import html
import re
import shutil
import struct
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from report_sample import NAME, stored_check

from failpath.report import html as report_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)"),
]


def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium with a fresh profile; its standard output."""
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        f"--user-data-dir={profile}", *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    return done.stdout


class _Server:
    """A local HTTP server over a folder that records every path requested."""

    def __init__(self, root: Path):
        self.paths: list[str] = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                server.paths.append(self.path)
                super().do_GET()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "_Server":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    result, _ = stored_check(tmp_path_factory)
    return report_html.write(result, tmp_path_factory.mktemp("browser") / "report.html")


def _title(dom: str) -> str:
    match = re.search(r"<title>(.*?)</title>", dom, flags=re.DOTALL)
    assert match is not None, dom[:500]
    return match.group(1)


def test_the_page_renders(report_file, tmp_path):
    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", report_file.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 2400)
    # A blank page compresses to a few kilobytes; the report's tables and charts do not.
    assert len(data) > 60_000


def test_no_payload_runs(report_file, tmp_path, tmp_path_factory):
    dom = chromium(tmp_path, "--dump-dom", "--virtual-time-budget=2000", report_file.as_uri())
    result, _ = stored_check(tmp_path_factory)
    # Every payload would set the title to PWNED-...; the title is still the page's own.
    assert html.unescape(_title(dom)) == f"failpath check: {NAME} — {result.verdict.label}"
    assert not re.search(r"<(script|iframe)\b", dom, flags=re.IGNORECASE)
    assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", dom, flags=re.IGNORECASE)
    assert "PWNED" in dom  # the payloads are on the page, as text
    assert "parser" in dom and NAME.split("<")[0].strip() in dom


def test_the_harness_sees_a_payload_that_runs(tmp_path):
    """Control: the same check catches a page that does run the payload."""
    page = tmp_path / "unsafe.html"
    page.write_text("<!DOCTYPE html><title>clean</title><img src=x onerror=\"document.title='PWNED'\">", encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", "--virtual-time-budget=2000", page.as_uri())
    assert _title(dom) == "PWNED"


def test_the_page_requests_nothing(report_file, tmp_path):
    root = report_file.parent
    with _Server(root) as server:
        dom = chromium(tmp_path, "--dump-dom", "--virtual-time-budget=2000", f"{server.url}/{report_file.name}")
    assert "READY TO" in dom
    assert server.paths == [f"/{report_file.name}"]


def test_the_harness_sees_a_request(tmp_path):
    """Control: a page that loads an image is seen fetching it."""
    (tmp_path / "probe.html").write_text('<!DOCTYPE html><title>t</title><img src="/probe.png">', encoding="utf-8")
    with _Server(tmp_path) as server:
        chromium(tmp_path, "--dump-dom", "--virtual-time-budget=2000", f"{server.url}/probe.html")
    assert "/probe.png" in server.paths
