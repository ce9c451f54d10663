"""The WebSocket close codes the gateway sends or reads (RFC 6455 §7.4.1), named once."""

CLOSE_NORMAL = 1000  # kicked, taken over
CLOSE_GOING_AWAY = 1001  # shutdown, idle or heartbeat timeout, a line that just ended
CLOSE_PROTOCOL_ERROR = 1002  # too many bad frames in a row
CLOSE_UNSUPPORTED_DATA = 1003  # a binary frame: OCPP-J is text
CLOSE_TOO_BIG = 1009  # a frame over ocpp.max_frame_size
CLOSE_INTERNAL_ERROR = 1011  # the gateway failed this connection
