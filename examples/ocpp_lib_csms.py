"""A small central system written with the PyPI ``ocpp`` library, as its own examples write one.

Nothing here knows about the gateway: ``csms_over_websockets.py`` serves it directly to charge
points, ``csms_through_gateway.py`` serves it behind ocpp_gw. Compare those two files.
"""

from __future__ import annotations

import itertools
import logging
from datetime import datetime, timezone

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as call_result201
from ocpp.v201.enums import Action as Action201
from ocpp.v201.enums import RegistrationStatusEnumType

log = logging.getLogger("csms")
_transaction_ids = itertools.count(1)


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


class CentralSystem(ChargePoint16):
    """The CSMS's view of one OCPP 1.6 charge point."""

    @on(Action.boot_notification)
    async def on_boot_notification(self, charge_point_vendor, charge_point_model, **_):
        log.info("%s: boot of a %s %s", self.id, charge_point_vendor, charge_point_model)
        return call_result.BootNotification(current_time=now(), interval=300,
                                            status=RegistrationStatus.accepted)

    @on(Action.heartbeat)
    async def on_heartbeat(self):
        return call_result.Heartbeat(current_time=now())

    @on(Action.status_notification)
    async def on_status_notification(self, connector_id, error_code, status, **_):
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_tag):
        return call_result.Authorize(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.start_transaction)
    async def on_start_transaction(self, connector_id, id_tag, meter_start, timestamp, **_):
        return call_result.StartTransaction(transaction_id=next(_transaction_ids),
                                            id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.meter_values)
    async def on_meter_values(self, connector_id, meter_value, **_):
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    async def on_stop_transaction(self, meter_stop, timestamp, transaction_id, **_):
        return call_result.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted})


class CentralSystem201(ChargePoint201):
    """The CSMS's view of one OCPP 2.0.1 charging station (boot and heartbeat only, to show the shape)."""

    @on(Action201.boot_notification)
    async def on_boot_notification(self, charging_station, reason, **_):
        log.info("%s: boot (%s) of a %s", self.id, reason, charging_station.get("model"))
        return call_result201.BootNotification(current_time=now(), interval=300,
                                               status=RegistrationStatusEnumType.accepted)

    @on(Action201.heartbeat)
    async def on_heartbeat(self):
        return call_result201.Heartbeat(current_time=now())


# One class per OCPP version the CSMS speaks, picked by the subprotocol the CP negotiated.
CENTRAL_SYSTEMS = {"ocpp1.6": CentralSystem, "ocpp2.0.1": CentralSystem201}


async def on_connect(connection, cid: str) -> None:
    """Serve one charge point until it disconnects."""
    central_system = CENTRAL_SYSTEMS[connection.subprotocol](cid, connection)
    await central_system.start()
