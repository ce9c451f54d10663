"""The ledger's accounting (tools/harness/ledger.py), pure: cases in tests/data/ledger_cases.json, one event list each."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tools.harness.ledger import (
    CP,
    CSMS,
    Ledger,
    close_ending,
    cp_answer_ending,
    csms_reply_ending,
)

CASES = json.loads((Path(__file__).resolve().parent.parent / "data" / "ledger_cases.json").read_text())


def by_name(group: str):
    return pytest.mark.parametrize("case", CASES[group], ids=[case["name"] for case in CASES[group]])


def replay(events: list) -> Ledger:
    ticks = itertools.count()
    ledger = Ledger(clock=lambda: float(next(ticks)))
    for op, *args in events:
        if op == "kill":
            ledger.gateway_killed()
        elif op == "back":
            ledger.gateway_back()
        elif op == "node_stopping":
            ledger.broker_node_stopping()
        elif op == "node_gone":
            ledger.broker_node_gone()
        elif op == "phase":
            ledger.phase = args[0]
        else:
            getattr(ledger, {"start": "start", "end": "end", "delivered": "delivered", "stray": "stray",
                             "fault": "fault"}[op])(*args)
    return ledger


@by_name("ledger")
def test_the_report_accounts_each_call_as_the_case_says(case):
    report = replay(case["events"]).report()

    assert [[row.side, row.kind, row.detail, row.phase, row.count] for row in report.rows] == case["rows"]
    assert [entry.uid for entry in report.unaccounted] == case["unaccounted"]
    assert [entry.uid for entry in report.killed] == case["killed"]
    assert report.duplicates == case.get("duplicates", {})
    assert report.strays == case.get("strays", {})
    assert report.faults == case.get("faults", {})
    assert report.ok is (not case["unaccounted"])


@by_name("cp_answers")
def test_a_cp_calls_ending_is_read_from_the_answer_frame(case):
    assert list(cp_answer_ending(case["frame"])) == case["ending"]


@by_name("csms_replies")
def test_a_csms_calls_ending_is_read_from_the_reply_envelope(case):
    assert list(csms_reply_ending(case["envelope"])) == case["ending"]


@by_name("closes")
def test_a_close_under_a_cp_call_is_attributed(case):
    assert list(close_ending(**case["args"])) == case["ending"]


def test_a_call_cannot_be_started_twice():
    ledger = replay([["start", "cp", "CP001", "c1"]])
    with pytest.raises(ValueError):
        ledger.start(CP, "CP001", "c1")


@pytest.mark.parametrize("kind", ["open", "killed", "node_lost", "no_subscriber", "no-such-ending"])
def test_endings_the_report_assigns_or_the_side_cannot_have_are_refused(kind):
    ledger = replay([["start", "cp", "CP001", "c1"]])
    with pytest.raises(ValueError):
        ledger.end(CP, "c1", kind)


def test_open_counts_split_by_whether_the_call_was_open_at_a_kill():
    ledger = replay([["start", "csms", "CP001", "s1"], ["kill"], ["back"], ["start", "csms", "CP001", "s2"],
                     ["start", "cp", "CP001", "c1"]])

    assert (ledger.open(), ledger.open(CSMS), ledger.open(killed=True), ledger.open(killed=False)) == (3, 2, 1, 2)
    assert (ledger.started(), ledger.started(CP), ledger.ended()) == (3, 1, 0)


def test_the_printed_table_names_every_ending_and_lists_what_is_unaccounted():
    report = replay([["start", "cp", "CP001", "c1"], ["end", "cp", "c1", "gateway_error", "InternalError: x"],
                     ["start", "csms", "CP002", "s1"], ["kill"], ["start", "csms", "CP003", "s2"]]).report()

    text = report.format()
    assert "answered: CallError from the gateway" in text and "InternalError: x" in text
    assert "in flight in a killed process or a stopped broker node: 1" in text and "csms call s1 for CP002" in text
    assert "UNACCOUNTED: 1" in text and "csms call s2 for CP003" in text
