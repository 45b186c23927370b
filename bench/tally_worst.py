"""What finding the worst cases and reproducible faults cost a check, as ratios measured in one run.

1. **Tally fold.** ``RowTally.add`` over rows of 40 variants a case, every hostile row a silent failure
   (the worst case for the worst-case candidates: each case keeps its most confident silent failure),
   against the same tally with ``worst=0`` (no candidates kept) and against a bare loop reading the
   same fields of every row (the floor). Peak memory (tracemalloc) of the fold, with and without
   candidates, per request.
2. **Fault variants.** ``Evaluator.evaluate`` on fault-suite items, each wrapped for its own variant
   (``Fault.wrap_variant`` and the policy's guard made per item, so faults depend on the variant and
   not on call order), against the same items through one system wrapped once (``Fault.wrap``, the way
   the runner worked before), and plain items against the plain guarded system.

    python bench/tally_worst.py              # 40,000 rows, 3 rounds
    python bench/tally_worst.py --rows 200000 --rounds 5

Each figure is the best of the rounds; the ratios are what to compare (the machine is shared).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from typing import Any


def rows(n: int) -> list[tuple[str, dict[str, Any]]]:
    template = {"suite": "hostile", "family": "hostile", "perturbation": "zero_width", "split": "evaluation",
                "outcome": "answered", "correct": False, "raw_correct": False, "raw_error": None,
                "raw_confidence": 0.9, "confidence": 0.9, "state": None, "states": ["low_confidence"],
                "actions": [], "value": "x" * 200, "input": "y" * 300, "contract": "unchanged", "edits": []}
    out = []
    for i in range(n):
        case = f"c{i // 40}"
        confidence = 0.5 + (i * 7919 % 1000) / 2000
        out.append((f"hostile/zero_width/{case}/{i % 40}", {**template, "case_id": case, "variant": i % 40, "confidence": confidence}))
    return out


def bare(data: list[tuple[str, dict[str, Any]]]) -> None:
    for key, r in data:
        (r["suite"], r["perturbation"], r["case_id"], r.get("family"), r["split"], r["outcome"], r.get("correct"),
         r.get("raw_confidence"), r.get("state"), r.get("contract"), r.get("raw_correct"), r.get("raw_error"), key)


def fold(data: list[tuple[str, dict[str, Any]]], worst: int) -> Any:
    from failpath.check.tally import RowTally

    t = RowTally({"low_confidence": ("escalate",)}, lambda a, b: a == b, worst=worst)
    for start in range(0, len(data), 1024):
        t.add(data[start : start + 1024])
    return t.finish()


def best_of(rounds: int, fn: Any, *args: Any) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def peak(fn: Any, *args: Any) -> int:
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def fault_items(n: int) -> tuple[list[Any], list[Any]]:
    from failpath.chaos import FAULT
    from failpath.core import Case
    from failpath.check.plan import plan_items

    cases = [Case(id=f"a{i}", input=f"{i} Main St", expected=f"{i} MAIN ST") for i in range(n)]
    split = {c.id: "evaluation" for c in cases}
    faulted = list(plan_items(cases, [FAULT], 0, split))
    return [i for i in faulted if i.fault is not None and i.fault.name in ("none_output", "wrong_type", "nan_confidence")], \
        [i for i in faulted if i.fault is None]


def evaluate_all(evaluator: Any, items: list[Any]) -> None:
    for item in items:
        evaluator.evaluate(item)


class _OncePerFault:
    """The runner's old way: one wrapped system per fault, its calls counted in order."""

    def __init__(self, evaluator: Any):
        self.evaluator = evaluator
        self.cache: dict[int, tuple[Any, Any]] = {}

    def systems(self, item: Any) -> tuple[Any, Any]:
        found = self.cache.get(id(item.fault))
        if found is None:
            raw = item.fault.wrap(self.evaluator.system, self.evaluator.seed)
            found = self.cache[id(item.fault)] = (self.evaluator.guard_factory(raw), raw)
        return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import failpath as fp
    from failpath.check.runner import Evaluator, guard_factory
    from failpath.core import Prediction

    data = rows(args.rows)
    t_bare = best_of(args.rounds, bare, data)
    t_none = best_of(args.rounds, fold, data, 0)
    t_worst = best_of(args.rounds, fold, data, 5)
    m_none, m_worst = peak(fold, data, 0), peak(fold, data, 5)
    n_cases = args.rows // 40
    print(f"tally fold, {args.rows:,} rows ({n_cases:,} cases, every row a silent failure), best of {args.rounds}:")
    print(f"  bare loop over the fields   {t_bare * 1e6 / args.rows:7.2f} µs/row   (floor)")
    print(f"  tally, worst=0              {t_none * 1e6 / args.rows:7.2f} µs/row   ratio to bare {t_none / t_bare:5.2f}")
    print(f"  tally, worst=5              {t_worst * 1e6 / args.rows:7.2f} µs/row   ratio to worst=0 {t_worst / t_none:5.2f}")
    print(f"  peak memory: worst=0 {m_none / args.rows:6.1f} B/row, worst=5 {m_worst / args.rows:6.1f} B/row "
          f"(+{(m_worst - m_none) / n_cases:,.0f} B per case with a silent failure)")

    def system(text: str) -> Prediction:
        return Prediction(text.upper(), 0.9)

    policy = fp.Policy("bench", rules=[fp.on(fp.ProviderError()).do(fp.Abstain("down")),
                                       fp.on(fp.InvalidOutput()).do(fp.Abstain("invalid")),
                                       fp.on(fp.Unexpected()).do(fp.Abstain("unexpected"))], store=False)
    faulted, plain = fault_items(max(200, args.rows // 40))
    per_variant = Evaluator(system, guard_factory(policy), _judge(), seed=0)
    once = Evaluator(system, guard_factory(policy), _judge(), seed=0)
    once.systems = _OncePerFault(once).systems  # type: ignore[method-assign]
    t_variant = best_of(args.rounds, evaluate_all, per_variant, faulted)
    t_once = best_of(args.rounds, evaluate_all, once, faulted)
    t_plain = best_of(args.rounds, evaluate_all, per_variant, plain[: len(faulted)])
    print(f"fault items ({len(faulted):,}: none_output, wrong_type, nan_confidence), best of {args.rounds}:")
    print(f"  plain items                 {t_plain * 1e6 / len(faulted):7.2f} µs/item  (floor)")
    print(f"  wrapped once per fault      {t_once * 1e6 / len(faulted):7.2f} µs/item  ratio to plain {t_once / t_plain:5.2f}")
    print(f"  wrapped per variant         {t_variant * 1e6 / len(faulted):7.2f} µs/item  ratio to once {t_variant / t_once:5.2f}")


def _judge() -> Any:
    from failpath.check.judges import get_judge

    return get_judge("text")


if __name__ == "__main__":
    main()
