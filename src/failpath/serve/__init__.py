"""``failpath serve``: the review web page for the people who answer escalations.

Reviewers sign in with a token (``failpath serve add-reviewer NAME`` prints it once; the store keeps
only its digest), claim tickets from the queue, and answer, reject or pass them; a caller waiting on
the ticket (``ticket.wait()``, or an agent run held for approval) receives the answer. The page also
lists traces (with the filters of ``failpath traces list``) and check runs with their verdicts and
HTML reports. It needs the ``serve`` extra: ``pip install "failpath[serve]"``.

:func:`create_app` (in :mod:`failpath.serve.app`) builds the Starlette application over any store;
:mod:`failpath.serve.access` holds tokens, sessions' CSRF tokens and the security headers.
"""

from __future__ import annotations

from failpath.serve.access import new_token, token_digest
from failpath.serve.app import create_app

__all__ = ["create_app", "new_token", "token_digest"]
