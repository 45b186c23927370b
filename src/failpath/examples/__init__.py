"""Runnable examples that ship with failpath, so the README's commands work anywhere.

- ``failpath.examples.policy``: a complete guard policy for a US-address parser
  (``failpath lint failpath.examples.policy:policy``).
- ``failpath.examples.addresses``: the address parser (usaddress), labeled addresses and the policies
  the check runs.

Nothing here is imported by ``import failpath``: the examples need the ``examples`` extra (usaddress, Faker).
"""
