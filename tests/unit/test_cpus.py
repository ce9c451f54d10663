"""process.cpus: where the gateway's threads run (ocpp_gw.netio.cpus)."""

from __future__ import annotations

import os
import threading

import pytest

from ocpp_gw.netio import cpus
from ocpp_gw.settings import CpuChoice


def test_one_chooses_the_highest_numbered_cpu_the_process_may_use():
    assert cpus.choose("one", frozenset({0, 1, 2, 3})) == {3}
    assert cpus.choose("one", frozenset({4})) == {4}


def test_all_leaves_every_allowed_cpu_and_a_list_keeps_only_allowed_ones():
    assert cpus.choose("all", frozenset({0, 1})) == {0, 1}
    assert cpus.choose(frozenset({1, 5}), frozenset({0, 1, 2})) == {1}


def test_a_list_with_no_allowed_cpu_is_refused_naming_both_sets():
    with pytest.raises(ValueError, match=r"none of CPUs 7,9 is available to this process \(it may use 0,1\)"):
        cpus.choose(frozenset({7, 9}), frozenset({0, 1}))


@pytest.mark.parametrize("text, value", [("one", "one"), ("all", "all"), ("1", {1}), ("0,2-3", {0, 2, 3}),
                                         (" 1 - 2 , 5", {1, 2, 5})])
def test_the_setting_reads_one_all_or_cpu_numbers_and_ranges(text, value):
    assert CpuChoice()(text) == value


@pytest.mark.parametrize("text", ["", "two", "3-1", "1,,2", "-1", "1.5"])
def test_the_setting_refuses_anything_else(text):
    with pytest.raises(ValueError):
        CpuChoice()(text)


def test_applied_placement_holds_for_threads_started_after_and_spread_widens_for_a_while(monkeypatch):
    # Run in a thread of its own: a placement applies to the calling thread and its children only,
    # so the test process keeps its CPUs.
    monkeypatch.setattr(cpus, "_allowed", None)
    allowed = frozenset(os.sched_getaffinity(0))
    seen = {}

    def place():
        seen["placement"] = cpus.apply("one")
        child = threading.Thread(target=lambda: seen.__setitem__("child", os.sched_getaffinity(0)))
        child.start()
        child.join()
        with cpus.spread():
            seen["spread"] = os.sched_getaffinity(0)
        seen["after"] = os.sched_getaffinity(0)

    worker = threading.Thread(target=place)
    worker.start()
    worker.join()
    one = {max(allowed)}
    assert seen["placement"] == cpus.Placement(frozenset(one), allowed)
    assert seen["child"] == one and seen["after"] == one
    assert seen["spread"] == allowed
    assert os.sched_getaffinity(0) == allowed  # this thread untouched
