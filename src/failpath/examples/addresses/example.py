"""``check_kwargs``: the bundled example put together for ``fp.check``.

``failpath check --example addresses`` calls ``check_kwargs()`` and passes the result to ``fp.check``.
"""

from __future__ import annotations

from typing import Any

from failpath.chaos import FAULT, Suite
from failpath.examples.addresses.data import generate_addresses, shifted_inputs
from failpath.examples.addresses.policy import ACCEPTED, careful_policy, shipping_policy
from failpath.examples.addresses.system import AddressParser

__all__ = [
    "REFERENCE_SIZE",
    "SILENT_FAILURE_BUDGET",
    "COVERAGE_FLOOR",
    "SEVERITY",
    "FAULT_SUITE",
    "check_kwargs",
    "reference_addresses",
]

#: How many known-good addresses the anomaly detector compares inputs with, and their seed (apart
#: from the cases' seeds).
REFERENCE_SIZE = 400
REFERENCE_SEED = 10_000
#: The most silent failures per request under chaos the team accepts (upper 95% bound).
SILENT_FAILURE_BUDGET = 0.02
#: The share of clean addresses that must be answered without a human.
COVERAGE_FLOOR = 0.75
#: How bad a wrong label is (the token_labels judge's severity weights): a wrong ZIP code, house number
#: or street sends the parcel to another address (severe); a wrong town or state is usually caught by
#: the ZIP code (major); any other label wrong (a unit type, a street suffix) is minor.
SEVERITY = {
    "ZipCode": "severe",
    "AddressNumber": "severe",
    "StreetName": "severe",
    "PlaceName": "major",
    "StateName": "major",
}


#: The built-in fault suite (its ``crash`` fault exercises the policy's ``Unexpected`` rule), drawn for
#: every case. A fault hardly depends on the address, and a quarter of the cases would exercise every
#: failure path; but the gate bounds the fault family's silent failures with the case as the unit, and
#: a quarter (about 130 evaluation cases) cannot bound them under the 2% budget even with none at all.
FAULT_SUITE = Suite("fault", "fault", FAULT.perturbations)


def check_kwargs(n: int = 1000, seed: int = 0, *, policy: str = "careful") -> dict[str, Any]:
    """The keyword arguments of ``fp.check`` for ``n`` generated addresses: system, cases, policy, judge, suites.

    ``policy="careful"`` is the first policy a careful team writes (the README's first run);
    ``policy="shipping"`` is the one written after reading its report.
    """
    if policy not in ("careful", "shipping"):
        raise ValueError(f"policy must be 'careful' or 'shipping', got {policy!r}")
    make_policy = careful_policy if policy == "careful" else shipping_policy
    return {
        "system": AddressParser(),
        "policy": make_policy(),  # its anomaly detector is fitted by the check, on the calibration half
        "cases": generate_addresses(n, seed=seed),
        "judge": "token_labels",
        "suites": ["hostile", "realistic", FAULT_SUITE],
        "seed": seed,
        "executor": "process",  # a CPU-bound local model: every core tags addresses
        "silent_failure_budget": SILENT_FAILURE_BUDGET,
        "severity": SEVERITY,
        "coverage_floor": COVERAGE_FLOOR,
        "worst_cases": 5,
        "worst_case_seconds": 5.0,
        "accepted": ACCEPTED,
        "shifted": shifted_inputs(),
        "name": f"addresses: usaddress on {n:,} generated US addresses ({policy} policy)",
    }


def reference_addresses() -> list[str]:
    """Known-good inputs for the anomaly detector: generated addresses, apart from any check's cases."""
    return [case.input for case in generate_addresses(REFERENCE_SIZE, seed=REFERENCE_SEED)]

