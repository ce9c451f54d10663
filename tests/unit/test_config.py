"""Typed per-component configuration built from the settings: one set of defaults, the KEYS'."""

from __future__ import annotations

from ocpp_gw.admin.api import AdminConfig
from ocpp_gw.chargers.listener import ListenerConfig
from ocpp_gw.chargers.session import SessionConfig
from ocpp_gw.chargers.tls import TlsConfig
from ocpp_gw.config import Config
from ocpp_gw.mqtt.router import HoldConfig
from ocpp_gw.protocol.pipe import PipeConfig
from ocpp_gw.settings import Settings, loads


def test_each_component_default_is_the_default_of_its_settings_key():
    config = Config.from_settings(Settings.defaults())
    assert config.pipe == PipeConfig()
    assert config.session == SessionConfig()
    assert config.listener == ListenerConfig()
    assert config.tls == TlsConfig()
    assert config.mqtt.hold == HoldConfig()
    assert config.admin.token_file == AdminConfig().token_file
    assert config.admin.auth_backend == AdminConfig().auth_backend
    assert config.admin.credentials_file == AdminConfig().credentials_file


def test_the_history_length_of_a_pipe_comes_from_admin_history_len():
    config = Config.from_settings(loads("admin.history_len = 50\nadmin.history_payloads = true\n"))
    assert (config.pipe.history_len, config.pipe.history_payloads) == (50, True)


def test_topic_templates_reach_the_bridge_compiled_with_the_mountpoint():
    config = Config.from_settings(loads("ocpp.mountpoint = site1/\nocpp.upstream.topic.Heartbeat = hb/${cid}\n"))
    topics = config.mqtt.topics
    assert topics.call_topic.render("CP1", "BootNotification", "1", "request") == "site1/cp/CP1"
    assert topics.call_topics["Heartbeat"].render("CP1", "Heartbeat", "2", "request") == "site1/hb/CP1"
    assert config.mqtt.link.status_topic.startswith("site1/gateway/")


def test_a_send_waits_at_least_a_second_even_with_a_shorter_awaiting_timeout():
    assert Config.from_settings(loads("ocpp.awaiting_timeout = 0.2s\n")).session.send_timeout == 1.0
    assert Config.from_settings(loads("ocpp.awaiting_timeout = 5s\n")).session.send_timeout == 5.0


def test_checking_disabled_means_no_checker_configuration():
    assert Config.from_settings(Settings.defaults()).checker is None
    checked = Config.from_settings(loads("ocpp.message_format_checking = all\n"))
    assert checked.checker is not None and checked.pipe.check_upstream and checked.pipe.check_dnstream
