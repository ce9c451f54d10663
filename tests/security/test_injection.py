"""A charge point cannot reach outside its own topics, and secrets never reach the log (real broker, real gateway)."""

from __future__ import annotations

import base64
import json

import pytest

from tools.harness import password_for
from tests.security.wire import RawClient, basic

HOSTILE_ACTIONS = ["Boot/#", "Boot/+", "#", "+", "Boot/../../CP2", "Boot\u0000", "Boot Notification", "$SYS",
                   "Boot%2F%23", "Bööt"]


@pytest.fixture(scope="module")
def gw(module_gateways):
    # ${action} in the topic is where an unchecked Action would do harm.
    return module_gateways({"ocpp.upstream.topic": "cp/${cid}/${action}", "log.level": "debug"})


@pytest.fixture
def everything(gw, mqtt_probe):
    """The probe, subscribed to every topic on the broker (this gateway's mountpoint and beyond)."""
    return mqtt_probe.subscribe("#")


def open_cp(gw, cid: str) -> RawClient:
    client = RawClient(("127.0.0.1", gw.port))
    answer = client.upgrade(f"/ocpp/{cid}", {"Authorization": basic(cid, password_for(cid))})
    assert answer.status == 101, answer
    return client


def published(gw, messages, *, besides: tuple[str, ...] = ()) -> list[str]:
    """Topics under the gateway's mountpoint, leaving out its own status and the listed ones."""
    return [m.topic for m in messages if m.topic.startswith(gw.mountpoint) and "/gateway/" not in m.topic
            and m.topic not in {gw.mountpoint + topic for topic in besides}]


def test_hostile_actions_are_answered_formation_violation_and_publish_nothing(gw, everything):
    with open_cp(gw, "CP011") as cp:
        everything.expect_json(f"{gw.mountpoint}events/CP011", {"event": "connected"})
        for number, action in enumerate(HOSTILE_ACTIONS):
            cp.send_text(json.dumps([2, f"inj-{number}", action, {}]))
            answer = json.loads(cp.recv_text())
            assert answer[:3] == [4, f"inj-{number}", "FormationViolation"], answer
            cp.send_text(f'[3,"unmatched-{number}",{{}}]')  # well formed: resets the count of bad frames in a row
        cp.send_text('[2,"fine-1","Heartbeat",{}]')
        everything.expect(f"{gw.mountpoint}cp/CP011/Heartbeat")
    # The good Heartbeat was claimed above, so the hostile ones were never published.
    assert published(gw, everything.drain(), besides=("events/CP011",)) == []


@pytest.mark.parametrize("segment", ["CP011%2F%23", "CP011%2F%2B", "CP011%23", "CP011%2B", "%2B", "%23",
                                     "CP011%2FCP012", "CP011%00", "CP011%3A"])
def test_cid_carrying_topic_syntax_is_refused_before_anything_happens(gw, everything, segment):
    with RawClient(("127.0.0.1", gw.port)) as client:
        answer = client.upgrade(f"/ocpp/{segment}", {"Authorization": basic("CP011", password_for("CP011"))})
    assert answer.status == 400
    with open_cp(gw, "CP012"):
        everything.expect_json(f"{gw.mountpoint}events/CP012", {"event": "connected"})
    assert published(gw, everything.drain(), besides=("events/CP011", "events/CP012")) == []


def test_cp_receives_only_what_is_published_on_its_own_downstream_topic(gw, everything, mqtt_probe):
    with open_cp(gw, "CP013") as cp:
        everything.expect_json(f"{gw.mountpoint}events/CP013", {"event": "connected"})
        call = {"MessageTypeId": 2, "UniqueId": "x", "Action": "Reset", "Payload": {"type": "Soft"}}
        for topic in ["cs/CP014", "cs/CP013/extra", "cs/CP0131", "cs/CP01", "cs", "cs//CP013", "CS/CP013"]:
            mqtt_probe.publish(gw.mountpoint + topic, {**call, "UniqueId": f"foreign-{topic}"})
        mqtt_probe.publish(f"{gw.mountpoint}cs/CP013", {**call, "UniqueId": "own-1"})
        # Published in order on one connection: anything foreign delivered would arrive first.
        assert json.loads(cp.recv_text()) == [2, "own-1", "Reset", {"type": "Soft"}]


def test_passwords_and_authorization_headers_never_reach_the_log(gw):
    secret = "Pa55-never-logged-4242"
    header = basic("CP015", secret)
    token = header.split(" ", 1)[1]
    since = gw.mark()
    with RawClient(("127.0.0.1", gw.port)) as client:  # wrong password
        assert client.upgrade("/ocpp/CP015", {"Authorization": header}).status == 401
    with RawClient(("127.0.0.1", gw.port)) as client:  # right user, refused for another reason
        assert client.upgrade("/ocpp/CP015", {"Authorization": basic("CP015", password_for("CP015")),
                                              "Sec-WebSocket-Key": "c2hvcnQ="}).status == 400
    with RawClient(("127.0.0.1", gw.port)) as client:  # header too large, credentials inside
        answer = client.upgrade("/ocpp/CP015", {"Authorization": header, "X-Pad": "p" * 9000})
        assert answer.status == 431
    with RawClient(("127.0.0.1", gw.port)) as client:  # malformed Basic value holding a secret
        assert client.upgrade("/ocpp/CP015", {"Authorization": f"Basic {secret}"}).status == 401
    with open_cp(gw, "CP015") as cp:  # accepted, at debug level
        cp.send_text('[3,"done-1",{}]')
        gw.wait_for_log(r"done-1", since=since)
    log = "\n".join(gw.logs)
    right = password_for("CP015")
    for forbidden in (secret, token, right, base64.b64encode(f"CP015:{right}".encode()).decode(), "Authorization:"):
        assert forbidden not in log, forbidden


@pytest.fixture(scope="module")
def id_gw(module_gateways):
    # ${id} in the topic (bare payload format needs it) puts the CP's own UniqueId into a topic level.
    return module_gateways({"ocpp.upstream.topic": "cp/${cid}/${id}"})


@pytest.mark.parametrize("unique_id", ["a/b", "+", "x\u0000y"])
def test_unique_id_cannot_add_levels_or_wildcards_to_a_topic(id_gw, everything, unique_id):
    gw = id_gw
    since = gw.mark()
    with open_cp(gw, "CP017") as cp:
        cp.send_text(json.dumps([2, unique_id, "Heartbeat", {}]))
        cp.send_text('[2,"plain-1","Heartbeat",{}]')
        # The session survives and the next good call is published where it belongs.
        everything.expect(f"{gw.mountpoint}cp/CP017/plain-1", timeout=3)
    topics = published(gw, everything.drain(), besides=("events/CP017",))
    assert topics == [], topics
    assert not any("Traceback" in line for line in gw.logs[since:])
