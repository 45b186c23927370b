"""The bundled example: a real model (usaddress, a CRF US-address parser) checked end to end.

``failpath check --example addresses`` runs it. Copy this package as the template for wrapping
your own model: ``system.py`` wraps the model, ``data.py`` builds labeled cases, ``policy.py`` says
what happens in every failure state, and ``check_kwargs`` puts them together for ``fp.check``.
"""

from __future__ import annotations

from failpath.examples.addresses.data import case_from_pairs, generate_addresses, load_parserator_xml
from failpath.examples.addresses.system import AddressParser

__all__ = ["AddressParser", "case_from_pairs", "generate_addresses", "load_parserator_xml"]
