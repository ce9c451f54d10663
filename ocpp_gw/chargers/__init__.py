"""The charge-point side: listeners, WebSocket connections, sessions, TLS, the registry of who is connected."""
