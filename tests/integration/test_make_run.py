"""`make run` as a developer uses it: ports picked on the command line, no advice meant for the systemd unit."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tools.harness import ROOT, OutputLines, free_port, matcher


def test_make_run_serves_on_the_ports_given_and_says_nothing_about_limitnofile(tmp_path):
    ws_port, admin_port, mqtt_port = free_port(), free_port(), free_port()
    venv = Path(sys.executable).parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("INVOCATION_ID", "NOTIFY_SOCKET")}
    make = [shutil.which("make"), "-s", "-C", str(ROOT), "run", f"VENV={venv}", f"RUN_DIR={tmp_path / 'run'}",
            f"WS_PORT={ws_port}", f"ADMIN_PORT={admin_port}", f"MQTT_PORT={mqtt_port}"]
    # A shell's usual open files limit, too low for the default ocpp.listener.max_connections.
    process = subprocess.Popen(
        ["bash", "-c", 'ulimit -n 1024 && exec "$@"', "make-run", *make],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    output = OutputLines(process.stdout, "make-run")
    try:
        assert output.wait_for_line(matcher("ocpp_gw ready"), timeout=90), output.tail()
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/healthz", timeout=5) as answer:
            assert answer.status == 200
        assert any(f"0.0.0.0:{ws_port}" in line for line in output.lines), output.tail()
        assert not any("LimitNOFILE" in line or "WARNING" in line for line in output.lines), output.tail()
        assert any("ulimit -n" in line for line in output.lines), output.tail()
        config = (tmp_path / "run" / "ocpp.conf").read_text()
        assert f"ocpp.listener.ws = 0.0.0.0:{ws_port}" in config and f"admin.listener = 127.0.0.1:{admin_port}" in config
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
