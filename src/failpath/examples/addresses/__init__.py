"""The bundled example: a real model (usaddress, a CRF US-address parser) checked end to end.

``failpath check --example addresses`` runs it. Copy this package as the template for wrapping
your own model: ``system.py`` wraps the model, ``data.py`` builds labeled cases, ``policy.py`` says
what happens in every failure state, and ``check_kwargs`` puts them together for ``fp.check``.
"""

from __future__ import annotations

from failpath.core import ConfigError

try:
    import faker  # noqa: F401
    import usaddress  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ConfigError(
        f"the addresses example needs the package {exc.name!r}: pip install 'failpath[examples]'"
    ) from None

from failpath.examples.addresses.data import case_from_pairs, generate_addresses, load_parserator_xml
from failpath.examples.addresses.example import SEVERITY, check_kwargs
from failpath.examples.addresses.policy import careful_policy, foreign_characters, shipping_policy
from failpath.examples.addresses.system import AddressParser, is_labeled_tokens

__all__ = [
    "SEVERITY",
    "AddressParser",
    "case_from_pairs",
    "careful_policy",
    "check_kwargs",
    "foreign_characters",
    "generate_addresses",
    "is_labeled_tokens",
    "load_parserator_xml",
    "shipping_policy",
]
