"""What a new user meets first: ctl's readable output, the open files advice in a shell and under systemd."""

from __future__ import annotations

import logging
import time

from ocpp_gw.ctl import format_show, when
from ocpp_gw.service import open_files_advice

NOW = 1_800_000_000.0


def test_ctl_show_prints_times_with_how_long_ago_and_the_history_one_message_a_line():
    body = {"cid": "CP001", "connected_at": NOW - 125, "last_message_at": None, "state": "WAITING",
            "history": [{"ts": NOW - 2.5, "direction": "from_cp", "type": "Call", "action": "Heartbeat",
                         "unique_id": "h1", "size": 24, "payload": None, "gateway_error": None},
                        {"ts": NOW - 1, "direction": "to_csms", "type": "CallError", "action": "Reset",
                         "unique_id": "r1", "size": 90, "payload": None, "gateway_error": "timeout"}],
            "history_payloads": False}
    lines = format_show(body, NOW).splitlines()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(NOW - 125))
    assert lines[:4] == ["cid                  CP001", f"connected at         {stamp} (2m 5s ago)",
                         "last message at      -", "state                WAITING"]
    assert lines[4] == "history (2 messages, oldest first):"
    assert "CP -> gateway" in lines[5] and "Heartbeat" in lines[5] and "h1" in lines[5]
    assert lines[6].endswith("gateway error: timeout") and "gateway -> CSMS" in lines[6]
    assert when(NOW - 7300, NOW).endswith("(2h 1m ago)")


def test_a_low_open_files_limit_in_a_developer_shell_is_no_warning_at_the_default_max_connections():
    level, message = open_files_advice(1024, 10000, environ={})
    assert level == logging.INFO and "ulimit -n" in message and "LimitNOFILE" not in message


def test_a_low_open_files_limit_warns_in_a_shell_when_max_connections_was_raised():
    level, message = open_files_advice(1024, 20000, environ={})
    assert level == logging.WARNING and "ulimit -n 40064" in message


def test_a_low_open_files_limit_under_systemd_warns_to_raise_limitnofile():
    level, message = open_files_advice(1024, 10000, environ={"INVOCATION_ID": "abc"})
    assert level == logging.WARNING and "raise LimitNOFILE to at least 20064" in message
    assert open_files_advice(65536, 10000, environ={"INVOCATION_ID": "abc"}) is None


def test_a_gateway_collects_cycles_ten_times_less_often_than_python_by_default():
    # A storm's connections leave thousands of long-lived objects: at CPython's 700 the collector
    # ran full collections over all of them every few hundred connections (docs/performance.md).
    import gc
    import sys
    import threading

    from ocpp_gw.service import Service
    from ocpp_gw.settings import loads

    before = gc.get_threshold(), sys.getswitchinterval(), threading.stack_size()
    try:
        gc.set_threshold(700, 10, 10)
        Service(loads("auth.backend = none\nmqtt.server = 127.0.0.1:1\n"))
        young, middle, old = gc.get_threshold()
        assert young == 7000 and (middle, old) == (10, 10)
    finally:
        gc.set_threshold(*before[0])  # Service tunes the whole process: give the test run its own back
        sys.setswitchinterval(before[1])
        threading.stack_size(before[2])
