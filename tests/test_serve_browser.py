"""The review page in a real browser: headless Chromium (Debian's package) driven by Playwright.

A ``failpath serve`` process serves a SQLite store; a guarded call waits on its ticket in another
process. Skipped, naming what is missing, without Chromium (``apt-get install chromium``) or
Playwright's Python package (``pip install playwright``; no browser download: it drives /usr/bin/chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("FAILPATH_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SECRET = "browser-test-secret-" + "x" * 20
PAYLOAD = '<script>window.__pwned = 1; document.title = "pwned"</script><img src=x onerror="window.__pwned = 2">'
# The README's picture of the queue page is taken here: written to docs/ only when asked
# (FAILPATH_WRITE_SCREENSHOT=1), so a test run leaves the checkout as it found it.
DOCS_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "review-page.png"


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.skip("headless Chromium is not installed: apt-get install chromium (Debian's package)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright: pip install playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Site:
    """A running ``failpath serve`` over a store file, and the reviewers' tokens."""

    def __init__(self, store: str, url: str, tokens: dict[str, str]):
        self.store, self.url, self.tokens = store, url, tokens


@pytest.fixture
def site(tmp_path):
    from failpath.serve import new_token, token_digest
    from failpath.store import open_store

    store = str(tmp_path / "team.db")
    tokens = {name: new_token() for name in ("ana", "bo")}
    with open_store(store) as opened:
        for name, token in tokens.items():
            opened.add_reviewer(name, token_digest(token))
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from failpath.cli import main; main()", "serve", "--store", store, "--port", str(port)],
        env={**os.environ, "FAILPATH_SERVE_SECRET": SECRET}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"failpath serve did not start: {server.communicate()[0]}") from None
                time.sleep(0.1)
        yield Site(store, f"http://127.0.0.1:{port}", tokens)
    finally:
        server.terminate()
        server.wait(10)


def _ticket(store: str, **changes) -> str:
    from failpath.core import Ticket
    from failpath.store import open_store

    fields = dict(ticket_id="", queue="addresses", created=time.time() - 300, policy="addresses", trace_id=None,
                  input_preview="12 Main St, Springfeld", input_raw=None, output={"city": "Springfeld"},
                  confidence=0.41, state="low_confidence")
    fields.update(changes)
    with open_store(store) as opened:
        return opened.create_ticket(Ticket(**fields))


def _sign_in(browser, site: Site, name: str):
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.goto(site.url + "/queue")
    assert page.url.endswith("/signin")
    page.fill("#token", site.tokens[name])
    page.click("button[type=submit]")
    page.wait_for_url("**/queue")
    return page


_CALLER = textwrap.dedent(
    """
    import json, sys
    import failpath as fp
    from failpath import review

    store = sys.argv[1]
    policy = fp.Policy("addresses", rules=[
        fp.on(fp.LowConfidence(below=0.9)).do(fp.Escalate(queue="addresses", deadline=120, default=None)),
        fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
    ], store=store)
    outcome = policy.wrap(lambda text: fp.Prediction({"city": "Springfeld"}, 0.4))("12 Main St, Springfeld IL")
    print(json.dumps({"ticket": outcome.ticket_id}), flush=True)
    answered = review.get(outcome.ticket_id, store=store).wait_sync(timeout=90, poll_interval=0.1)
    print(json.dumps({"kind": answered.kind, "value": answered.value}), flush=True)
    """
)


def test_a_reviewer_signs_in_claims_answers_and_the_waiting_caller_gets_the_answer(chromium, site, tmp_path):
    _ticket(site.store, queue="refunds", input_preview="refund order 4471: 40 EUR, item arrived broken",
            output={"refund": 400.0}, confidence=0.55, state="anomalous_input", deadline=time.time() + 3600)
    _ticket(site.store, input_preview=PAYLOAD, output="<b>bold?</b>", confidence=0.2, state="injection_suspected")
    caller = subprocess.Popen([sys.executable, "-c", _CALLER, site.store], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ticket_id = json.loads(caller.stdout.readline())["ticket"]
        page = _sign_in(chromium, site, "ana")
        assert ticket_id[:12] in page.inner_text("#tickets")
        shot = DOCS_SCREENSHOT if os.environ.get("FAILPATH_WRITE_SCREENSHOT") else tmp_path / "review-page.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        page.click(f"a[href='/tickets/{ticket_id}']")
        page.click("#claim")
        assert page.inner_text("#claimed-by") == "ana"
        page.fill("#answer-text", '{"city": "Springfield"}')
        page.fill("#note", "checked the map")
        page.click("#send-answer")
        assert page.inner_text("#status") == "resolved"
        out, err = caller.communicate(timeout=60)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()
    assert json.loads(out.strip().splitlines()[-1]) == {"kind": "answered", "value": {"city": "Springfield"}}, err
    from failpath.store import open_store

    with open_store(site.store) as opened:
        assert opened.get_ticket(ticket_id).reviewer == "ana"


def test_two_reviewers_race_on_one_ticket_and_exactly_one_wins(chromium, site):
    ticket_id = _ticket(site.store)
    pages = {name: _sign_in(chromium, site, name) for name in ("ana", "bo")}
    for name, page in pages.items():
        page.goto(f"{site.url}/tickets/{ticket_id}")
        page.fill("#answer-text", json.dumps({"city": f"answer of {name}"}))
    for page in pages.values():  # both submit forms loaded while the ticket was open
        page.click("#send-answer")
    texts = {name: page.content() for name, page in pages.items()}
    from failpath.store import open_store

    with open_store(site.store) as opened:
        resolutions = opened.ticket_resolutions(ticket_id)
        ticket = opened.get_ticket(ticket_id)
    assert [r["accepted"] for r in resolutions].count(True) == 1 and len(resolutions) == 2
    winner = ticket.reviewer
    loser = "bo" if winner == "ana" else "ana"
    assert ticket.answer == {"city": f"answer of {winner}"}
    assert "already" in texts[loser] and winner in texts[loser]


def test_a_page_showing_a_script_payload_runs_none_of_it(chromium, site):
    ticket_id = _ticket(site.store, input_preview=PAYLOAD, output=PAYLOAD)
    page = _sign_in(chromium, site, "ana")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for path in ("/queue", f"/tickets/{ticket_id}"):
        page.goto(site.url + path)
        assert page.evaluate("window.__pwned") is None
        assert page.title() != "pwned" and not dialogs
        assert page.locator("script").count() == 0  # shown as text, never parsed as markup
    assert PAYLOAD in page.inner_text("#input")


def test_an_unsigned_request_is_refused_and_a_post_without_the_csrf_token_too(chromium, site):
    ticket_id = _ticket(site.store)
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{site.url}/tickets/{ticket_id}")
    assert page.url.endswith("/signin") and "12 Main St" not in page.content()
    refused = context.request.post(f"{site.url}/tickets/{ticket_id}/answer", form={"answer": '"x"'})
    assert refused.status == 403
    signed = _sign_in(chromium, site, "ana")
    forged = signed.context.request.post(f"{site.url}/tickets/{ticket_id}/answer", form={"answer": '"x"'})
    assert forged.status == 403 and "CSRF" in forged.text()
    from failpath.core import TicketStatus
    from failpath.store import open_store

    with open_store(site.store) as opened:
        assert opened.get_ticket(ticket_id).status == TicketStatus.OPEN


_SCHEMA_CALLER = textwrap.dedent(
    """
    import json, sys
    from pydantic import BaseModel
    import failpath as fp
    from failpath import review

    class Address(BaseModel):
        street: str
        city: str

    store = sys.argv[1]
    policy = fp.Policy("addresses", rules=[
        fp.on(fp.InvalidOutput(schema=Address)).do(fp.Abstain("off schema")),
        fp.on(fp.LowConfidence(below=0.9)).do(fp.Escalate(queue="addresses", deadline=120, default=None)),
        fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
    ], store=store)
    outcome = policy.wrap(lambda text: fp.Prediction({"street": "12 Main St", "city": "Springfeld"}, 0.4))("12 Main St")
    print(json.dumps({"ticket": outcome.ticket_id}), flush=True)
    answered = review.get(outcome.ticket_id, store=store).wait_sync(timeout=90, poll_interval=0.1)
    print(json.dumps({"kind": answered.kind, "value": answered.value}), flush=True)
    """
)


def test_an_answer_off_the_policys_schema_is_refused_next_to_the_field_and_the_corrected_one_reaches_the_caller(chromium, site):
    caller = subprocess.Popen([sys.executable, "-c", _SCHEMA_CALLER, site.store], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ticket_id = json.loads(caller.stdout.readline())["ticket"]
        page = _sign_in(chromium, site, "ana")
        page.goto(f"{site.url}/tickets/{ticket_id}")
        assert "street" in page.inner_text("#answer-fields") and "city" in page.inner_text("#answer-fields")
        page.fill("#answer-text", json.dumps({"street": "12 Main St"}))
        page.click("#send-answer")
        assert "'city' is a required property" in page.inner_text("#answer-problems")
        assert page.get_attribute("#answer-text", "aria-describedby") == "answer-problems"
        assert json.loads(page.input_value("#answer-text")) == {"street": "12 Main St"}  # what was typed is kept
        assert page.inner_text("#status") == "open"
        page.fill("#answer-text", json.dumps({"street": "12 Main St", "city": "Springfield"}))
        page.click("#send-answer")
        page.wait_for_url(f"**/tickets/{ticket_id}?done=answered")
        assert page.inner_text("#status") == "resolved" and page.locator("#answer-problems").count() == 0
        answered = json.loads(caller.stdout.readline())
        assert answered == {"kind": "answered", "value": {"street": "12 Main St", "city": "Springfield"}}
    finally:
        caller.kill()
        caller.wait(10)
