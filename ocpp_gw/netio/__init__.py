"""Low-level socket helpers shared by the charger and MQTT sides: GIL-keeping calls, the eventfd doorbell."""
