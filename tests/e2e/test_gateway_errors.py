"""Gateway errors as docs/mqtt-api.md shows them to backend authors, seen through the reference backend."""

from __future__ import annotations

import json

from csms_responder import is_gateway_error
from websockets.sync.client import connect


def test_a_call_the_charge_point_leaves_unanswered_gets_a_timeout_gateway_error(gateway, responder):
    with connect(gateway.ws_url("CP031"), subprotocols=["ocpp1.6"],
                 additional_headers={"Authorization": gateway.auth_header("CP031")}, open_timeout=5) as charge_point:
        boot = {"chargePointVendor": "v", "chargePointModel": "m"}
        charge_point.send(json.dumps([2, "b1", "BootNotification", boot]))
        assert json.loads(charge_point.recv(timeout=5))[:2] == [3, "b1"]  # answered by the responder

        reply = responder.call("CP031", "Reset", {"type": "Soft"}, timeout=10)  # awaiting_timeout is 2 s here
        call = json.loads(charge_point.recv(timeout=1))

    assert call[0] == 2 and call[2] == "Reset" and call[1] == reply["UniqueId"]
    assert is_gateway_error(reply)
    assert reply["ErrorDetails"]["reason"] == "timeout"
