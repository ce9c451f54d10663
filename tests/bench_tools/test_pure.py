"""The bench's pure parts: summaries, frames and answers, splitting, credentials, profiles, the table."""

import base64
import os
import threading
import json

import pytest

from bench import credentials, hotspots, report, threads
from bench.generators import shares
from bench.numbers import latency_summary, percentile, ratio
from bench.ocppj import answer_payload, call_frame, envelope_answer, utc_iso


@pytest.mark.parametrize("values, q, expected", [
    ([], 50, None),
    ([7.0], 99, 7.0),
    ([1, 2, 3, 4], 50, 2),
    ([4, 3, 2, 1], 50, 2),
    (list(range(1, 101)), 99, 99),
    (list(range(1, 101)), 100, 100),
    (list(range(1, 101)), 0, 1),
])
def test_percentile_is_nearest_rank(values, q, expected):
    assert percentile(values, q) == expected


def test_latency_summary_of_nothing_has_no_figures():
    assert latency_summary([]) == {"count": 0, "p50": None, "p99": None, "max": None}


@pytest.mark.parametrize("gateway, baseline, expected", [
    (3.0, 2.0, 1.5), (None, 2.0, None), (3.0, None, None), (3.0, 0, None), (0, 2.0, 0.0),
])
def test_ratio_is_gateway_over_baseline_when_both_exist(gateway, baseline, expected):
    assert ratio(gateway, baseline) == expected


def test_call_frame_is_compact_ocpp_j():
    assert call_frame("7", "Heartbeat", {}) == '[2,"7","Heartbeat",{}]'


def test_boot_notification_answer_gives_the_interval():
    assert answer_payload("BootNotification", "T", 30) == {"status": "Accepted", "currentTime": "T", "interval": 30}


def test_heartbeat_answer_gives_the_time_and_other_actions_get_an_empty_payload():
    assert answer_payload("Heartbeat", "T", 30) == {"currentTime": "T"}
    assert answer_payload("StatusNotification", "T", 30) == {}


def test_envelope_answer_replies_to_calls_only():
    call = {"MessageTypeId": 2, "UniqueId": "u1", "Action": "Heartbeat", "Payload": {}}
    assert envelope_answer(call, "T", 30) == {"MessageTypeId": 3, "UniqueId": "u1", "Payload": {"currentTime": "T"}}
    assert envelope_answer({"MessageTypeId": 3, "UniqueId": "u1", "Payload": {}}, "T", 30) is None


def test_utc_iso_is_whole_seconds_with_z():
    assert utc_iso(0) == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize("total, parts, expected", [
    (10, 2, [5, 5]), (11, 2, [6, 5]), (3, 4, [1, 1, 1, 0]), (0, 2, [0, 0]), (10000, 4, [2500] * 4),
])
def test_shares_split_near_equally_larger_first(total, parts, expected):
    assert shares(total, parts) == expected
    assert sum(shares(total, parts)) == total


def test_passwords_are_per_cp_and_repeatable():
    seed = b"s" * 32
    assert credentials.password(seed, "BENCH00001") == credentials.password(seed, "BENCH00001")
    assert credentials.password(seed, "BENCH00001") != credentials.password(seed, "BENCH00002")
    assert credentials.password(b"t" * 32, "BENCH00001") != credentials.password(seed, "BENCH00001")


def test_basic_authorization_carries_cid_and_password():
    seed = b"s" * 32
    header = credentials.basic_authorization(seed, "BENCH00042")
    scheme, token = header.split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token).decode() == f"BENCH00042:{credentials.password(seed, 'BENCH00042')}"


def test_cids_are_valid_for_the_gateway():
    from ocpp_gw.protocol.identity import cid_problem
    assert credentials.cid(7) == "BENCH00007"
    assert cid_problem(credentials.cid(9999)) is None


def test_hot_spots_count_self_and_inclusive_samples():
    stacks = hotspots.read_stacks(["a;b;c 3\n", "a;b 2\n", "a;d 5\n", "garbage\n", "\n"])
    total, own, inclusive = hotspots.hot_spots(stacks, top=2)
    assert total == 10
    assert own == [("d", 5), ("c", 3)]
    assert inclusive == [("a", 10), ("b", 5)] or inclusive == [("a", 10), ("d", 5)]


def test_table_has_a_row_per_measure_with_the_ratio():
    results = {"latency": {"gateway": {"p50": 0.002, "p99": 0.004}, "baseline": {"p50": 0.001, "p99": 0.002}}}
    table = report.markdown_table(results)
    assert "| latency | 1 CP, Heartbeat round trip p50 (ms) | 2 | 1 | 2× | ≤ 1.5× |" in table
    assert table.count("\n") == 3


def test_table_shows_a_dash_for_a_side_not_measured():
    results = {"latency": {"baseline": {"p50": 0.001, "p99": 0.002}}}
    assert "| latency | 1 CP, Heartbeat round trip p50 (ms) | – | 1 | – | ≤ 1.5× |" in report.markdown_table(results)


def test_update_doc_replaces_only_its_own_section(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("# P\n\nprose\n<!-- bench:a:start -->\nold\n<!-- bench:a:end -->\nmore prose\n")
    report.update_doc(doc, "a", "new")
    report.update_doc(doc, "b", "other")
    text = doc.read_text()
    assert "old" not in text and "new" in text and "prose\n" in text and "more prose" in text
    assert text.rstrip().endswith("<!-- bench:b:start -->\nother\n<!-- bench:b:end -->")


def test_results_survive_a_json_round_trip_into_the_table():
    results = {"storm": {"gateway": {1000: {"last": 2.0, "failures": {}}},
                         "baseline": {1000: {"last": 1.0, "failures": {"timeout": 1}}}}}
    table = report.markdown_table(json.loads(json.dumps(results)))
    assert "| storm | 1,000 CPs: time until all booted (s) | 2 | 1 | 2× |  |" in table
    assert "| storm | 1,000 CPs: not booted | 0 | 1 | – |  |" in table


def test_storm_rounds_give_each_size_its_own_median_and_the_table_still_renders():
    rounds = [{"1000": {"last": 1.0, "failures": {}}, "3000": {"last": 9.0, "failures": {}}},
              {"1000": {"last": 3.0, "failures": {}}, "3000": {"last": 4.0, "failures": {}}},
              {"1000": {"last": 2.0, "failures": {}}, "3000": {"last": 5.0, "failures": {"closed": 1}}}]
    median = report.median_round("storm", rounds)
    assert (median["1000"]["last"], median["3000"]["last"]) == (2.0, 9.0)  # a storm with failures ranks slowest
    table = report.markdown_table({"storm": {"gateway": median, "baseline": median}})
    assert "| storm | 3,000 CPs: time until all booted (s) | 9 | 9 | 1× |  |" in table
    assert "rounds" not in table


def _round(last, failures=None):
    return {"last": last, "answered": 1, "p50": last, "failures": failures or {}}


def test_burst_reports_the_median_round_and_keeps_every_round():
    from bench.figures import _median_round
    rounds = [_round(3.2), _round(1.1), _round(1.3), _round(1.2), _round(9.0)]
    median = _median_round(rounds)
    assert median["last"] == 1.3 and median["rounds"] == rounds and median["failures"] == {}


def test_a_burst_round_with_unanswered_calls_ranks_slowest_and_its_failures_are_reported():
    from bench.figures import _median_round
    rounds = [_round(1.0), _round(None, {"timeout": 4}), _round(2.0)]
    median = _median_round(rounds)
    assert median["last"] == 2.0 and median["failures"] == {"timeout": 4}


def test_hotpath_times_every_stage_of_a_round_trip(capsys):
    from bench import hotpath
    assert hotpath.main(["--count", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    path, wsproto = hotpath.stages()
    assert len(lines) == len(path) + 1 + 1 + len(wsproto) and lines[len(path)].startswith("total")


def test_hotpath_setup_times_every_stage_of_a_connection_set_up(capsys):
    from bench import hotpath
    assert hotpath.main(["--setup", "--count", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(hotpath.setup_stages()) + 1 and lines[-1].startswith("total")


def test_the_storm_table_adds_up_each_server_process_cpu_per_cp():
    storm = {"3000": {"last": 3.0, "failures": {}, "cpu_ms_per_cp": {
        "gateway": {"user": 0.75, "system": 0.25}, "mosquitto": {"user": 0.05, "system": 0.05}}}}
    results = {"storm": {"gateway": storm, "baseline": {"3000": {"last": 2.0, "failures": {}, "cpu_ms_per_cp": {
        "baseline": {"user": 0.5, "system": 0.1}}}}}}
    cpu = next(values for figure, metric, values, *_ in report.rows(results) if "CPU per CP" in metric)
    assert cpu["gateway"] == 1.1 and cpu["baseline"] == 0.6


def test_plot_skips_a_figure_that_failed_on_one_side(tmp_path):
    results = {"storm": {"gateway": {"error": "RuntimeError: exited with 2"},
                         "baseline": {"1000": {"last": 10.0, "failures": {}}}}}
    assert report.plot(results, tmp_path / "plot.png") is True
    assert (tmp_path / "plot.png").stat().st_size > 0


def test_no_plot_when_there_is_nothing_against_n(tmp_path):
    results = {"hold": {"gateway": {"cps": 100}, "baseline": {"cps": 100}}}
    assert report.plot(results, tmp_path / "plot.png") is False
    assert not (tmp_path / "plot.png").exists()


def test_thread_roles_come_from_py_spy_dump_with_connection_threads_grouped():
    dump = ('Process 7: python -m ocpp_gw\nThread 7 (idle): "MainThread"\n    wait (threading.py:320)\n'
            'Thread 8 (active): "paho-mqtt-client-gw"\nThread 9 (idle): "ocpp-cp-CP001"\n'
            'Thread 10 (idle): "ocpp-cp-DEPOT-7"\n')
    assert threads.roles_in_dump(dump) == {7: "MainThread", 8: "paho-mqtt-client-gw", 9: "ocpp-cp", 10: "ocpp-cp"}


def test_thread_sample_reads_cpu_and_switches_of_every_thread_of_a_process():
    readings = threads.sample(os.getpid())
    assert threading.get_native_id() in readings
    assert all(len(reading) == 3 and min(reading) >= 0 for reading in readings.values())


def test_table_compares_the_adapter_with_the_baseline_when_it_was_measured():
    results = {"latency": {"adapter": {"p50": 0.006, "p99": 0.01}, "baseline": {"p50": 0.002, "p99": 0.004}},
               "sustain": {"adapter": {"sustain": {"throughput": 500.0, "p99": 0.1}},
                           "baseline": {"sustain": {"throughput": 1000.0, "p99": 0.05}}}}
    table = report.markdown_table(results)
    assert table.splitlines()[0] == ("| figure | measure | gateway + adapter | baseline | gateway + adapter / baseline"
                                     " | target |")
    assert "| latency | 1 CP, Heartbeat round trip p50 (ms) | 6 | 2 | 3× |  |" in table
    assert "| sustain | closed loop: round trips/s | 500 | 1,000 | 0.5× |  |" in table


def test_table_with_two_versions_compares_each_with_its_own_baseline_and_with_1_6():
    results = {"latency": {"gateway": {"p50": 0.001, "p99": 0.002}, "baseline": {"p50": 0.002, "p99": 0.004},
                           "gateway 2.0.1": {"p50": 0.0011, "p99": 0.002},
                           "baseline 2.0.1": {"p50": 0.003, "p99": 0.004}}}
    table = report.markdown_table(results)
    header = table.splitlines()[0]
    assert ("| gateway 1.6 | gateway 2.0.1 | baseline 1.6 | baseline 2.0.1 | gateway 1.6 / baseline 1.6 "
            "| gateway 2.0.1 / baseline 2.0.1 | gateway 2.0.1 / gateway 1.6 | baseline 2.0.1 / baseline 1.6 |") in header
    assert "| 1 | 1.1 | 2 | 3 | 0.5× | 0.367× | 1.1× | 1.5× |" in table


def test_results_keys_name_the_version_except_1_6():
    assert report.side_key("gateway", "1.6") == "gateway"
    assert report.side_key("baseline", "2.0.1") == "baseline 2.0.1"
    assert report.split_side("baseline 2.0.1") == ("baseline", "2.0.1")
    assert report.split_side("adapter") == ("adapter", "1.6")


def test_every_simulated_version_boots_with_a_payload_of_its_own_version():
    from bench.ocppj import DIALECTS
    assert DIALECTS["1.6"].boot_payload.keys() == {"chargePointVendor", "chargePointModel"}
    for version in ("2.0.1", "2.1"):
        assert DIALECTS[version].subprotocol == f"ocpp{version}"
        assert set(DIALECTS[version].boot_payload) == {"reason", "chargingStation"}


def test_the_median_round_of_a_figure_is_reported_and_every_round_kept():
    rounds = [{"p50": 0.003}, {"error": "boom"}, {"p50": 0.001}, {"p50": 0.002}, {"p50": 0.004}]
    median = report.median_round("latency", rounds)
    assert median["p50"] == 0.003 and median["rounds"] == rounds
    throughput = [{"sustain": {"throughput": t}} for t in (100, 300, 200)]
    assert report.median_round("sustain", throughput)["sustain"]["throughput"] == 200
    assert report.median_round("latency", [{"p50": 1}]) == {"p50": 1}
