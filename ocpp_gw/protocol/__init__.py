"""The OCPP-J protocol, pure: frames, envelopes, topics, schemas, the handshake, the pipe. No I/O; imports nothing from the layers above."""
