"""The ocpp-gw command line: --check-config, config errors at start, passwd, ctl."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[2]


def ocpp_gw(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "ocpp_gw", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_check_config_accepts_the_shipped_file():
    result = ocpp_gw("--check-config", str(ROOT / "etc" / "ocpp.conf"))
    assert result.returncode == 0, result.stderr


def test_check_config_names_file_line_and_key_and_exits_2(tmp_path):
    conf = tmp_path / "ocpp.conf"
    conf.write_text("# comment\nocpp.idle_timeout = soon\n")
    result = ocpp_gw("--check-config", str(conf))
    assert result.returncode == 2
    assert f"{conf}:2: ocpp.idle_timeout:" in result.stderr


def test_check_config_reports_every_error_of_the_file_each_with_file_line_and_key(tmp_path):
    conf = tmp_path / "ocpp.conf"
    conf.write_text("ocpp.idle_timeout = soon\nlog.level = info\nocpp.max_frame_size = huge\nnot.a.key = 1\n")
    result = ocpp_gw("--check-config", str(conf))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ")[1:3] for line in lines] == [
        [f"{conf}:1", "ocpp.idle_timeout"], [f"{conf}:3", "ocpp.max_frame_size"], [f"{conf}:4", "not.a.key"]]
    assert all(line.startswith("ocpp-gw: ") for line in lines)


def test_help_lists_the_ctl_and_passwd_subcommands():
    result = ocpp_gw("--help")
    assert result.returncode == 0
    assert "ocpp-gw ctl " in result.stdout and "ocpp-gw passwd " in result.stdout


def test_ctl_without_a_readable_config_says_in_one_line_what_to_pass(tmp_path):
    result = ocpp_gw("ctl", "-c", str(tmp_path / "absent.conf"), "clients")
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert "cannot read" in line and "-c FILE" in line and "--url" in line


def test_unknown_key_suggests_the_closest_one(tmp_path):
    conf = tmp_path / "ocpp.conf"
    conf.write_text("ocpp.idle_timout = 5s\n")
    result = ocpp_gw("--check-config", str(conf))
    assert result.returncode == 2
    assert "ocpp.idle_timeout" in result.stderr and ":1: ocpp.idle_timout" in result.stderr


def test_bare_mode_with_a_template_that_cannot_carry_the_id_refuses_to_start(tmp_path):
    conf = tmp_path / "ocpp.conf"
    conf.write_text("ocpp.payload_format = bare\n")
    result = ocpp_gw("-c", str(conf))
    assert result.returncode == 2
    assert "ocpp.payload_format" in result.stderr or "ocpp.upstream.topic" in result.stderr


def test_check_config_compiles_the_schemas_of_every_version(tmp_path):
    """An own 1.6 directory without 2.x subdirectories starts (the shipped 2.x schemas stand in);
    a broken 2.x schema in an own subdirectory stops the start, naming the file."""
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas, ignore=shutil.ignore_patterns("ocpp2*", "*.md"))
    conf = tmp_path / "ocpp.conf"
    conf.write_text(f"ocpp.message_format_checking = all\nocpp.json_schema_dir = {schemas}\n")
    assert ocpp_gw("--check-config", str(conf)).returncode == 0

    shutil.copytree(ROOT / "schemas" / "ocpp2.1", schemas / "ocpp2.1")
    (schemas / "ocpp2.1" / "ResetRequest.json").write_text('{"type": "object",')
    result = ocpp_gw("--check-config", str(conf))
    assert result.returncode == 2
    assert "ocpp.json_schema_dir" in result.stderr and f"{schemas}/ocpp2.1/ResetRequest.json" in result.stderr


def test_missing_config_file_exits_2(tmp_path):
    result = ocpp_gw("-c", str(tmp_path / "nope.conf"))
    assert result.returncode == 2
    assert "nope.conf" in result.stderr


def test_missing_credentials_file_exits_2_naming_it(tmp_path):
    conf = tmp_path / "ocpp.conf"
    conf.write_text(f"auth.file = {tmp_path}/passwd\nocpp.listener.ws = 127.0.0.1:0\n"
                    "admin.listener = off\n")
    result = ocpp_gw("-c", str(conf))
    assert result.returncode == 2
    assert f"{tmp_path}/passwd" in result.stderr


def test_passwd_add_list_remove_round_trip(tmp_path):
    passwd = tmp_path / "passwd"
    assert ocpp_gw("passwd", "add", "CP9", "--password-stdin", "--file", str(passwd),
                   stdin="s3cret-pass\n").returncode == 0
    listed = ocpp_gw("passwd", "list", "--file", str(passwd))
    assert listed.stdout.split() == ["CP9"]
    assert "s3cret" not in passwd.read_text()
    assert ocpp_gw("passwd", "remove", "CP9", "--file", str(passwd)).returncode == 0
    assert ocpp_gw("passwd", "remove", "CP9", "--file", str(passwd)).returncode == 1


def test_ctl_lists_and_kicks_a_connected_charge_point(gateway, mqtt_probe):
    from websockets.sync.client import connect
    mqtt_probe.subscribe("ocpp/events/#")
    with connect(gateway.ws_url("CP003"), subprotocols=["ocpp1.6"],
                 additional_headers={"Authorization": gateway.auth_header("CP003")}) as ws:
        mqtt_probe.expect_json("ocpp/events/CP003", {"event": "connected"})
        listed = ocpp_gw("ctl", "-c", str(gateway.config_path), "clients")
        shown = ocpp_gw("ctl", "-c", str(gateway.config_path), "show", "CP003")
        assert shown.returncode == 0, shown.stderr
        assert re.search(r"^connected at +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\d+s ago\)$", shown.stdout, re.M), shown.stdout
        assert "{" not in shown.stdout  # no Python repr of the history
        as_json = json.loads(ocpp_gw("ctl", "-c", str(gateway.config_path), "--json", "show", "CP003").stdout)
        assert isinstance(as_json["connected_at"], float) and isinstance(as_json["history"], list)
        assert listed.returncode == 0 and "CP003" in listed.stdout
        kicked = ocpp_gw("ctl", "-c", str(gateway.config_path), "kick", "CP003")
        assert kicked.returncode == 0
        mqtt_probe.expect_json("ocpp/events/CP003", {"event": "disconnected", "reason": "kicked"})
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1000
    assert ocpp_gw("ctl", "-c", str(gateway.config_path), "kick", "CP003").returncode == 1


def test_a_start_with_process_cpus_naming_no_available_cpu_fails_naming_the_file_and_key(tmp_path):
    from tools.harness import free_port
    conf = tmp_path / "ocpp.conf"
    conf.write_text(f"ocpp.listener.ws = 127.0.0.1:{free_port()}\nadmin.listener = off\nauth.backend = none\n"
                    f"mqtt.server = 127.0.0.1:{free_port()}\nprocess.cpus = 4000-4001\n")
    result = ocpp_gw("-c", str(conf))
    assert result.returncode != 0
    assert f"{conf}: process.cpus: none of CPUs 4000,4001 is available to this process" in result.stderr
