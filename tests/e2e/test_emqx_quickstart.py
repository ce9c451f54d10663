"""The EMQX OCPP gateway quick-start, steps 5–7, against our defaults (mountpoint `ocpp/`, envelope payloads).

Step 5: a charge point's BootNotification arrives on `ocpp/cp/<cid>` as an envelope.
Step 6: the backend's reply, published on `ocpp/cs/<cid>`, reaches the charge point.
Step 7: the charge point's StatusNotification follows on `ocpp/cp/<cid>`.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from websockets.sync.client import connect

from tools.harness import ROOT, OutputLines, matcher, stop_process

CID = "CP001"
BOOT_PAYLOAD = {"chargePointVendor": "vendor1", "chargePointModel": "model1"}
BOOT_REPLY_PAYLOAD = {"currentTime": "2023-12-01T14:20:39+00:00", "interval": 300, "status": "Accepted"}
STATUS_PAYLOAD = {"status": "Available", "errorCode": "NoError", "connectorId": 0}


def connect_charge_point(gateway, cid: str = CID):
    return connect(
        gateway.ws_url(cid),
        subprotocols=["ocpp1.6"],
        additional_headers={"Authorization": gateway.auth_header(cid)},
        open_timeout=5,
    )


def test_boot_notification_reply_and_status_notification_travel_as_in_the_emqx_quickstart(gateway, mqtt_probe):
    mqtt_probe.subscribe("ocpp/#")
    with connect_charge_point(gateway) as charge_point:
        assert charge_point.subprotocol == "ocpp1.6"

        charge_point.send(json.dumps([2, "1200012677", "BootNotification", BOOT_PAYLOAD]))
        boot = mqtt_probe.expect(f"ocpp/cp/{CID}").json
        assert boot == {
            "MessageTypeId": 2, "UniqueId": "1200012677", "Action": "BootNotification", "Payload": BOOT_PAYLOAD,
            "Protocol": "ocpp1.6",
        }

        mqtt_probe.publish(f"ocpp/cs/{CID}", {
            "MessageTypeId": 3, "UniqueId": boot["UniqueId"], "Payload": BOOT_REPLY_PAYLOAD,
            "Action": "BootNotification",
        })
        assert json.loads(charge_point.recv(timeout=5)) == [3, "1200012677", BOOT_REPLY_PAYLOAD]

        charge_point.send(json.dumps([2, "3062609974", "StatusNotification", STATUS_PAYLOAD]))
        status = mqtt_probe.expect(f"ocpp/cp/{CID}").json
        assert status == {
            "MessageTypeId": 2, "UniqueId": "3062609974", "Action": "StatusNotification", "Payload": STATUS_PAYLOAD,
            "Protocol": "ocpp1.6",
        }


def test_readme_walkthrough_works_with_mosquitto_sub_and_mosquitto_pub(broker, gateway):
    """The same exchange driven by the command-line clients the README tells users to run."""
    cid = "CP002"
    # stdbuf: mosquitto_sub's debug lines (which tell when it is subscribed) are otherwise block-buffered.
    watcher = subprocess.Popen(
        ["stdbuf", "-oL", shutil.which("mosquitto_sub"), "-h", broker.host, "-p", str(broker.port),
         "-q", "1", "-v", "-d", "-t", f"ocpp/cp/{cid}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    seen = OutputLines(watcher.stdout, "mosquitto_sub")
    try:
        assert seen.wait_for_line(matcher("SUBACK"), timeout=5), seen.tail()
        with connect_charge_point(gateway, cid) as charge_point:
            charge_point.send(json.dumps([2, "boot-1", "BootNotification", BOOT_PAYLOAD]))
            boot_line = seen.wait_for_line(matcher(f"^ocpp/cp/{cid} "), timeout=5)
            assert boot_line, seen.tail()
            boot = json.loads(boot_line.split(" ", 1)[1])
            assert boot["Action"] == "BootNotification" and boot["UniqueId"] == "boot-1"

            reply = {"MessageTypeId": 3, "UniqueId": boot["UniqueId"], "Action": "BootNotification",
                     "Payload": BOOT_REPLY_PAYLOAD}
            subprocess.run(
                [shutil.which("mosquitto_pub"), "-h", broker.host, "-p", str(broker.port), "-q", "1",
                 "-t", f"ocpp/cs/{cid}", "-m", json.dumps(reply)],
                check=True, timeout=10,
            )
            assert json.loads(charge_point.recv(timeout=5)) == [3, "boot-1", BOOT_REPLY_PAYLOAD]
    finally:
        stop_process(watcher, timeout=5)


def readme_five_minutes_topics() -> list[str]:
    """The topics of the lines the README's "Five minutes" section shows terminal 2 printing, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Five minutes", 1)[1].split("\n## ", 1)[0]
    return [line.split(" ", 1)[0] for line in section.splitlines()
            if line.startswith("ocpp/") and not line.startswith("ocpp/gateway/")]


def test_readme_five_minutes_shows_every_line_that_ocpp_wildcard_prints_including_the_backends_own_publish(
        broker, gateway):
    cid = "CP038"
    watcher = subprocess.Popen(
        ["stdbuf", "-oL", shutil.which("mosquitto_sub"), "-h", broker.host, "-p", str(broker.port),
         "-q", "1", "-v", "-d", "-t", "ocpp/#"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = OutputLines(watcher.stdout, "mosquitto_sub")
    try:
        assert seen.wait_for_line(matcher("SUBACK"), timeout=5), seen.tail()
        with connect_charge_point(gateway, cid) as charge_point:
            charge_point.send(json.dumps([2, "1200012677", "BootNotification", BOOT_PAYLOAD]))
            assert seen.wait_for_line(matcher(f"^ocpp/cp/{cid} "), timeout=5), seen.tail()
            subprocess.run([shutil.which("mosquitto_pub"), "-h", broker.host, "-p", str(broker.port), "-q", "1",
                            "-t", f"ocpp/cs/{cid}", "-m", json.dumps({"MessageTypeId": 3, "UniqueId": "1200012677",
                                                                       "Payload": BOOT_REPLY_PAYLOAD})],
                           check=True, timeout=10)
            charge_point.recv(timeout=5)
            charge_point.send(json.dumps([2, "3062609974", "StatusNotification", STATUS_PAYLOAD]))
        assert seen.wait_for_line(matcher(f"^ocpp/events/{cid} .*disconnected"), timeout=5), seen.tail()
    finally:
        stop_process(watcher, timeout=5)
    printed = [line.split(" ", 1)[0].replace(cid, "CP001") for line in seen.lines
               if line.startswith("ocpp/") and f"/{cid}" in line.split(" ", 1)[0]]
    assert printed == readme_five_minutes_topics()
