"""The JUnit XML report of a check: what CI dashboards (Jenkins, GitLab, GitHub, Azure) show as tests.

``render(result, rows)`` returns ``<testsuites>`` with:

- a ``failpath.verdict`` test suite: one test case per criterion of the verdict, failed when the
  criterion failed (message: its figure; text: its figure and detail);
- one ``failpath.suite.<suite>`` test suite per suite the check ran (the clean pass included): one
  test case per case of the evaluation half that failed in that suite (a silent failure, or a call
  that escaped the guard), listing its failing requests; a suite with no failing case holds one
  passing test case that says so. The evaluation half is what the verdict's figures count.

The per-suite test suites need the run's request rows (:func:`failpath.report.rows.request_rows`);
without them only the verdict suite is written. Text from inputs and outputs is written with
invisible and control characters as escapes (XML 1.0 cannot hold most of them), and escaped as XML.
"""

from __future__ import annotations

import datetime as _dt
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from failpath.report.json_report import check_document

__all__ = ["render", "FAILING_REQUESTS_SHOWN"]

#: How many failing requests a failed case's text lists (the count says how many there were).
FAILING_REQUESTS_SHOWN = 5

_VALUE_CHARS = 160


def _text(value: Any, limit: int = _VALUE_CHARS) -> str:
    from failpath.report.terminal import visible

    return visible(value, limit)


def _timestamp(seconds: Any) -> str | None:
    if not isinstance(seconds, (int, float)):
        return None
    return _dt.datetime.fromtimestamp(float(seconds), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _suite_element(parent: ET.Element, name: str, doc: Mapping[str, Any]) -> ET.Element:
    suite = ET.SubElement(parent, "testsuite", {"name": name})
    stamp = _timestamp(doc.get("started"))
    if stamp:
        suite.set("timestamp", stamp)
    return suite


def _count(suite: ET.Element) -> tuple[int, int]:
    cases = suite.findall("testcase")
    failures = sum(1 for c in cases if c.find("failure") is not None)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    return len(cases), failures


def _verdict_suite(root: ET.Element, doc: Mapping[str, Any]) -> None:
    verdict = doc.get("verdict") or {}
    suite = _suite_element(root, "failpath.verdict", doc)
    suite.set("time", f"{float(doc.get('elapsed_seconds') or 0.0):.3f}")
    properties = ET.SubElement(suite, "properties")
    facts = {
        "run_id": doc.get("run_id"),
        "verdict": "READY TO SHIP" if verdict.get("ship") else "READY TO DEMO",
        "name": doc.get("name"),
        "system": doc.get("system"),
        "policy": doc.get("policy"),
        "cases": doc.get("n_cases"),
        "requests": doc.get("n_rows"),
    }
    for key, value in facts.items():
        if value is not None:
            ET.SubElement(properties, "property", {"name": key, "value": _text(value, 400)})
    for criterion in verdict.get("reasons") or ():
        case = ET.SubElement(suite, "testcase", {"classname": "failpath.verdict", "name": str(criterion.get("name")), "time": "0"})
        if not criterion.get("passed"):
            figure = _text(criterion.get("figure") or "", 400)
            failure = ET.SubElement(case, "failure", {"message": figure, "type": "criterion"})
            detail = criterion.get("detail")
            failure.text = figure + (f"\n{_text(detail, 2000)}" if detail else "")
        if criterion.get("name") == "severe_silent_failure":
            _worst_thing_output(case, doc)


def _worst_thing_output(case: ET.Element, doc: Mapping[str, Any]) -> None:
    """The answer to "what is the worst thing this can do?" as the severe criterion's ``system-out``."""
    from failpath.report.terminal import visible
    from failpath.report.worst_thing import TITLE, worst_thing

    section = worst_thing(doc, visible)
    if section is None:
        return
    lines = [f"{TITLE}: {section.headline}", section.graded, f"Severe rate per family: {section.bounds}", section.raw]
    lines += [f"with the policy: {line}" for line in section.with_policy]
    lines += [f"without the policy: {line}" for line in section.without_policy]
    ET.SubElement(case, "system-out").text = "\n".join(_text(line, 600) for line in lines)


def _failing(row: Mapping[str, Any]) -> str | None:
    if row.get("outcome") == "escaped":
        return "escaped the guard"
    if row.get("silent_failure"):
        return "silent failure"
    return None


def _request_line(row: Mapping[str, Any], why: str) -> str:
    confidence = row.get("confidence")
    shown = "" if confidence is None else f" (confidence {float(confidence):.2f})"
    return (
        f"{why}: {row.get('perturbation') or 'none'} variant {row.get('variant')}: "
        f"input {_text(row.get('input_preview'))} -> output {_text(row.get('output'))}{shown}, "
        f"expected {_text(row.get('expected'))}"
    )


def _suite_suites(root: ET.Element, doc: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> None:
    by_suite: dict[str, dict[str, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    order: list[str] = []
    for row in rows:
        if row.get("split") != "evaluation":
            continue
        suite = str(row.get("suite"))
        if suite not in by_suite:
            order.append(suite)
        by_suite[suite][str(row.get("case_id"))].append(row)
    for name in [s for s in order if s != "clean"] + [s for s in order if s == "clean"]:
        cases = by_suite[name]
        classname = f"failpath.suite.{name}"
        suite = _suite_element(root, classname, doc)
        properties = ET.SubElement(suite, "properties")
        n_requests = sum(len(r) for r in cases.values())
        ET.SubElement(properties, "property", {"name": "cases", "value": str(len(cases))})
        ET.SubElement(properties, "property", {"name": "requests", "value": str(n_requests)})
        ET.SubElement(properties, "property", {"name": "split", "value": "evaluation"})
        failed_any = False
        for case_id, requests in cases.items():
            failing = [(r, why) for r in requests if (why := _failing(r))]
            if not failing:
                continue
            failed_any = True
            case = ET.SubElement(suite, "testcase", {"classname": classname, "name": f"case {_text(case_id, 200)}", "time": "0"})
            silent = sum(1 for _, why in failing if why == "silent failure")
            escaped = len(failing) - silent
            parts = [f"{silent} silent failure{'s' if silent != 1 else ''}"] if silent else []
            parts += [f"{escaped} escaped the guard"] if escaped else []
            message = f"{' and '.join(parts)} in {len(requests)} request{'s' if len(requests) != 1 else ''}"
            failure = ET.SubElement(case, "failure", {"message": message, "type": "silent_failure" if silent else "escaped"})
            lines = [_request_line(r, why) for r, why in failing[:FAILING_REQUESTS_SHOWN]]
            if len(failing) > FAILING_REQUESTS_SHOWN:
                lines.append(f"... and {len(failing) - FAILING_REQUESTS_SHOWN} more")
            failure.text = "\n".join([message, *lines])
        if not failed_any:
            ET.SubElement(suite, "testcase", {
                "classname": classname, "name": f"no silent failure in {n_requests} requests of {len(cases)} cases", "time": "0",
            })


def render(result: Any, rows: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The JUnit XML text for a check result (``CheckResult``, its document or a report document) and,
    when given, the run's request rows (:func:`failpath.report.rows.read_request_rows`)."""
    doc = check_document(result)
    root = ET.Element("testsuites", {"name": f"failpath check: {_text(doc.get('name') or doc.get('system') or doc.get('run_id'), 200)}"})
    _verdict_suite(root, doc)
    if rows:
        _suite_suites(root, doc, rows)
    tests = failures = 0
    for suite in root.findall("testsuite"):
        t, f = _count(suite)
        tests, failures = tests + t, failures + f
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", "0")
    root.set("time", f"{float(doc.get('elapsed_seconds') or 0.0):.3f}")
    stamp = _timestamp(doc.get("started"))
    if stamp:
        root.set("timestamp", stamp)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
