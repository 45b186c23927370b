"""Resume: a run killed with SIGKILL midway continues and ends exactly like an uninterrupted run."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import failpath as fp
from failpath.core import ConfigError
from failpath.store import open_store
from test_check_toy import ToySystem, make_cases, partial_policy, toy_kwargs

TESTS = str(Path(__file__).parent)
N_CASES = 60
PER_CASE = 7  # hash, nul, pad, timeout, server_error, wrong_type, clean
RUN_ID = "chk-resume-test"

CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    import failpath as fp
    from test_check_toy import ToySystem, make_cases, partial_policy, toy_kwargs

    fp.check(**toy_kwargs(
        Path({tmp!r}), system=ToySystem(delay=0.01), cases=make_cases({n}), policy=partial_policy(),
        concurrency=2, run_id={run_id!r}, store={store!r}, worst_cases=2, worst_case_seconds=20,
    ))
    """
)


def kwargs(tmp_path, store, **extra):
    return toy_kwargs(
        tmp_path, system=ToySystem(), cases=make_cases(N_CASES), policy=partial_policy(), concurrency=4,
        store=store, worst_cases=2, worst_case_seconds=20, **extra,
    )


def stable(document):
    """The result document without what differs between two runs of the same check (ids, clocks)."""
    volatile = {"run_id", "started", "finished", "elapsed_seconds", "resumed", "reused"}
    out = {k: v for k, v in document.items() if k not in volatile}
    out["baseline"] = {k: v for k, v in out["baseline"].items() if k != "run_id"}
    out["worst_cases"] = [
        {**w, "reproduction": {k: v for k, v in (w["reproduction"] or {}).items() if k != "seconds"}}
        for w in out["worst_cases"]
    ]
    return out


def rows_of(store_path, run_id):
    with open_store(store_path) as store:
        return {
            r["key"]: {k: v for k, v in r["data"].items() if k not in ("trace_id", "latency_ms")}
            for r in store.results(run_id)
        }


def count_rows(store_path, run_id):
    with open_store(store_path) as store:
        if store.get_run(run_id) is None:
            return 0
        return len(store.result_keys(run_id))


@pytest.mark.slow
def test_kill_minus_nine_then_resume_equals_an_uninterrupted_run(tmp_path):
    total = N_CASES * PER_CASE
    killed_store = tmp_path / "killed.db"
    script = CHILD.format(tests=TESTS, tmp=str(tmp_path), n=N_CASES, run_id=RUN_ID, store=str(killed_store))
    child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": "0"})
    try:
        deadline = time.monotonic() + 60
        while count_rows(killed_store, RUN_ID) < 64:
            assert child.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no rows reached the store"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    kept = count_rows(killed_store, RUN_ID)
    assert 64 <= kept < total
    with open_store(killed_store) as store:
        assert store.get_run(RUN_ID)["finished"] is None

    resumed = fp.check(**kwargs(tmp_path, killed_store, resume=True))
    assert resumed.run_id == RUN_ID and resumed.resumed and resumed.reused == kept
    assert resumed.n_rows == total

    whole = fp.check(**kwargs(tmp_path, tmp_path / "whole.db"))
    assert rows_of(killed_store, RUN_ID) == rows_of(tmp_path / "whole.db", whole.run_id)
    assert stable(resumed.to_dict()) == stable(whole.to_dict())
    assert resumed.worst_cases and resumed.worst_cases[0].reproduction.found

    # Resuming a finished run returns its stored result and runs nothing.
    again = fp.check(**kwargs(tmp_path, killed_store, resume=RUN_ID))
    assert again.to_dict() == resumed.to_dict()


def test_resume_refuses_another_configuration_and_unknown_runs(tmp_path):
    store = tmp_path / "s.db"
    first = fp.check(**toy_kwargs(tmp_path, cases=make_cases(10), worst_cases=0, store=store))
    with pytest.raises(ConfigError, match="started with seed = 7, this configuration has seed = 8"):
        fp.check(**toy_kwargs(tmp_path, cases=make_cases(10), worst_cases=0, store=store, seed=8, resume=first.run_id))
    with pytest.raises(ConfigError, match="n_cases"):
        fp.check(**toy_kwargs(tmp_path, cases=make_cases(11), worst_cases=0, store=store, resume=first.run_id))
    with pytest.raises(ConfigError, match="no check run with that id"):
        fp.check(**toy_kwargs(tmp_path, cases=make_cases(10), store=store, resume="chk-nope"))
    with pytest.raises(ConfigError, match="no unfinished check run"):
        fp.check(**toy_kwargs(tmp_path, cases=make_cases(10), store=store, resume=True))


def same_upper(output, expected):
    return str(output).upper() == str(expected).upper()


def test_a_function_judge_is_fingerprinted_by_name_so_another_process_can_resume():
    from failpath.check.plan import _judge_fingerprint
    from failpath.check.judges import FunctionJudge, TokenLabels

    assert _judge_fingerprint(FunctionJudge(same_upper)) == "function:test_check_resume.same_upper:1.0"
    assert "0x" not in _judge_fingerprint(FunctionJudge(same_upper))
    assert _judge_fingerprint(TokenLabels()) == repr(TokenLabels())


class InterruptedAfter(ToySystem):
    """The toy system, until the user presses Ctrl-C during its ``calls``-th call."""

    def __init__(self, calls: int):
        super().__init__()
        self.left = calls

    def __call__(self, text):
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt
        return super().__call__(text)


def test_ctrl_c_raises_check_interrupted_with_the_run_and_keeps_every_finished_row(tmp_path):
    store = tmp_path / "ctrl-c.db"
    with pytest.raises(fp.CheckInterrupted) as stopped:
        fp.check(**{**kwargs(tmp_path, store), "system": InterruptedAfter(150), "concurrency": 1})
    assert isinstance(stopped.value, KeyboardInterrupt)
    run_id = stopped.value.run_id
    assert stopped.value.stored == count_rows(store, run_id) > 0
    with open_store(store) as opened:
        assert opened.get_run(run_id)["finished"] is None
    # The same system (its kind is part of the run's fingerprint), this time with nobody at the keyboard.
    resumed = fp.check(**{**kwargs(tmp_path, store, resume=run_id), "system": InterruptedAfter(-1)})
    assert resumed.reused == stopped.value.stored and resumed.n_rows == N_CASES * PER_CASE
    whole = fp.check(**{**kwargs(tmp_path, tmp_path / "whole.db"), "system": InterruptedAfter(-1)})
    assert stable(resumed.to_dict()) == stable(whole.to_dict())
