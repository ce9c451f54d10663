"""Test harness: a real Mosquitto, the gateway as a subprocess, MQTT and process helpers."""

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
from .ports import free_port
from .process import OutputLines, matcher, stop_process

__all__ = [
    "GatewayProcess", "Message", "Mosquitto", "MqttProbe", "OutputLines", "READY_LINE", "ROOT", "TEST_CIDS",
    "basic_auth", "free_port", "json_matches", "leaked_threads", "matcher", "mqtt_connack", "password_for",
    "render_config", "stop_process", "wait_until", "write_credentials",
]
