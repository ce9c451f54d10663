"""The MQTT side: the paho client, the bridge (publish, subscribe, route downstream), the offline hold."""
