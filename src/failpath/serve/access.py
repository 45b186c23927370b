"""Who may use the review page: reviewer tokens, signed sessions, CSRF tokens, and the security headers.

A reviewer's token is 32 random bytes, printed once by ``failpath serve add-reviewer``; the store keeps
only its SHA-256 digest (a token this long needs no slow hash: it cannot be guessed, only stolen).
Signing in puts the reviewer's name and token digest in a session cookie signed by Starlette's
``SessionMiddleware`` (itsdangerous); every request checks that digest against the store again, so
removing a reviewer ends their sessions at once. Every form carries the session's CSRF token, and a
POST without it (or with another session's) is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

__all__ = [
    "new_token",
    "token_digest",
    "csrf_token",
    "csrf_ok",
    "PAGE_POLICY",
    "REPORT_POLICY",
    "security_headers",
]

#: The review pages' Content-Security-Policy: only this server's stylesheet; no script at all, no frames,
#: forms post only back here.
PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'none'; connect-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

#: A stored run's HTML report without its rows: the report's own policy (inline styles and SVG, nothing
#: run or fetched). With the rows, the report lists every failing case and the app sends the report's
#: policy allowing that one script by hash (``failpath.report.html.content_security_policy``).
REPORT_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src 'none'; script-src 'none'; "
    "connect-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def new_token() -> str:
    """A new reviewer token: 32 random bytes, URL-safe text (what the reviewer pastes to sign in)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The SHA-256 hex digest of a token: the only form in which the store keeps it."""
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, made on first use: every form of the page carries it."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        session["csrf"] = token
    return token


def csrf_ok(session: dict[str, Any], submitted: Any) -> bool:
    """Whether a form's ``csrf`` field is this session's token (compared in constant time)."""
    expected = session.get("csrf")
    return bool(expected) and isinstance(submitted, str) and hmac.compare_digest(expected, submitted)


def security_headers(policy: str = PAGE_POLICY) -> dict[str, str]:
    """The headers every response carries: the CSP, no sniffing, no framing, no referrer, no caching."""
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
