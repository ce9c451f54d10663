"""Loaded at start-up by a gateway that a fault test runs with this directory on PYTHONPATH.

With OCPP_GW_FAULT_CID set, the pipe of that charge point raises as soon as it has a frame from the CP to handle,
the way a bug in the gateway would; every other charge point is untouched. Nothing here is part of the product.
"""

import os

_cid = os.environ.get("OCPP_GW_FAULT_CID")

if _cid:
    from ocpp_gw.protocol import pipe

    _step = pipe.Pipe.step

    def _failing_step(self):
        if self.cid == _cid and not self.ChargeStationRx.empty():
            raise RuntimeError(f"fault injected for {_cid}")
        return _step(self)

    pipe.Pipe.step = _failing_step
