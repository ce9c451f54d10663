"""Harness shared by tests/ and bench/: a real Mosquitto, the gateway as a subprocess, MQTT, process and port helpers,
and the message ledger (tools.harness.ledger). Neither tests/ nor bench/ import each other; both import this."""

from .broker import Mosquitto, mqtt_connack
from .gateway import (
    READY_LINE,
    ROOT,
    TEST_CIDS,
    GatewayProcess,
    basic_auth,
    password_for,
    render_config,
    write_credentials,
)
from .leaks import leaked_threads, wait_until
from .mqtt import Message, MqttProbe, json_matches
from .ports import free_port, wait_for_port
from .process import OutputLines, matcher, stop_process

__all__ = [
    "GatewayProcess", "Message", "Mosquitto", "MqttProbe", "OutputLines", "READY_LINE", "ROOT", "TEST_CIDS",
    "basic_auth", "free_port", "json_matches", "leaked_threads", "matcher", "mqtt_connack", "password_for",
    "render_config", "stop_process", "wait_for_port", "wait_until", "write_credentials",
]
