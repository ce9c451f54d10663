"""Existing MQTT integration and end-to-end tests, run again on RabbitMQ's MQTT plugin (the `broker`
fixture is RabbitMQ in this folder, see conftest.py), so the gateway depends on MQTT, not on
Mosquitto. Each is the very test function of its own module; CHOSEN names them. What RabbitMQ does
differently, and why a test is not chosen, is in docs/scaling.md ("RabbitMQ").

One adaptation: RabbitMQ puts a SUBSCRIBE into effect some milliseconds after it arrives (it declares
and binds a durable queue), and the integration tests publish downstream as soon as the charge point's
first frame was handled, which on Mosquitto always comes after the subscription. Here their
`connect_cp` also waits for the charge point's `connected` event, which the gateway publishes after
subscribing on the same connection (the signal docs/scaling.md tells a CSMS to wait for).
"""

from __future__ import annotations

import importlib

from _pytest.fixtures import FixtureFunctionDefinition

from tools.harness import MqttProbe, json_matches
from tests.integration import _support

CHOSEN = {
    "tests.e2e.test_emqx_quickstart": [
        "test_boot_notification_reply_and_status_notification_travel_as_in_the_emqx_quickstart",
        "test_readme_walkthrough_works_with_mosquitto_sub_and_mosquitto_pub",
    ],
    "tests.e2e.test_mobilityhouse_ocpp_session": [
        "test_charging_session_is_answered_by_the_backend_through_the_gateway",
        "test_csms_calls_reach_the_charge_point_and_its_replies_carry_the_action",
    ],
    "tests.e2e.test_gateway_errors": [
        "test_a_call_the_charge_point_leaves_unanswered_gets_a_timeout_gateway_error",
    ],
    "tests.integration.test_bare_mode": [
        "test_emqx4_layout_carries_bare_payloads_both_ways",
    ],
    "tests.integration.test_mqtt_side": [
        "test_default_topics_and_envelope_both_ways",
        "test_connect_and_disconnect_events_are_retained_with_every_field",
        "test_will_marks_the_gateway_offline_when_it_dies",
        "test_invalid_downstream_envelope_gets_gateway_error_with_its_unique_id",
        "test_call_for_a_cp_that_did_not_come_back_within_offline_hold_gets_offline",
        "test_call_published_while_the_gateway_was_down_gets_offline_after_restart",
        "test_downstream_topic_is_unsubscribed_when_the_cp_leaves",
    ],
    "tests.integration.test_pipe_live": [
        "test_csms_calls_wait_while_a_cp_call_is_out_and_keep_their_order",
        "test_csms_call_over_max_mqueue_len_is_refused_with_queue_full",
        "test_cp_disconnect_answers_its_held_csms_calls_with_disconnected",
    ],
}



def connect_cp_once_subscribed(gateway, cid: str, **options):
    """tests.integration._support.connect_cp, returning once the gateway has announced this very
    connection (so its downstream subscription is in effect)."""
    host, port = str(gateway.settings["mqtt.server"]).rsplit(":", 1)
    topic = f"{gateway.mountpoint}events/{cid}"
    with MqttProbe(host, int(port)) as probe:
        probe.subscribe(topic)
        charge_point = _support.connect_cp(gateway, cid, **options)
        peer = "{}:{}".format(*charge_point.local_address[:2])
        probe.expect(topic, json_matches({"event": "connected", "peer": peer}))
    return charge_point


_missing: list[str] = []
for _module_name, _names in CHOSEN.items():
    _module = importlib.import_module(_module_name)
    if hasattr(_module, "connect_cp"):  # this module object is our own import, not the one pytest runs
        _module.connect_cp = connect_cp_once_subscribed
    # The module's own fixtures (e.g. its module-scoped gateway) come along with its tests.
    for _name, _value in vars(_module).items():
        if isinstance(_value, FixtureFunctionDefinition):
            globals()[_name] = _value
    for _name in _names:
        if hasattr(_module, _name):
            globals()[_name] = getattr(_module, _name)
        else:
            _missing.append(f"{_module_name}.{_name}")


def test_every_chosen_test_still_exists():
    assert _missing == [], "renamed or removed: update CHOSEN in this file"
