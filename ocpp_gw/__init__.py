"""ocpp_gw: an OCPP-J 1.6 to MQTT gateway."""

__version__ = "0.1.0"
