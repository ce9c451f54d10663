"""The WebSocket close codes the gateway sends or reads (RFC 6455 §7.4.1), named once."""

CLOSE_NORMAL = 1000  # kicked, taken over
CLOSE_GOING_AWAY = 1001  # shutdown, idle or heartbeat timeout, a line that just ended
CLOSE_PROTOCOL_ERROR = 1002  # too many bad frames in a row
CLOSE_UNSUPPORTED_DATA = 1003  # a binary frame: OCPP-J is text
CLOSE_NO_STATUS = 1005  # reported only (never sent): the CP's close frame carried no code
CLOSE_ABNORMAL = 1006  # reported only (never sent): the line ended without a close frame (TCP FIN or reset)
CLOSE_TOO_BIG = 1009  # a frame over ocpp.max_frame_size
CLOSE_INTERNAL_ERROR = 1011  # the gateway failed this connection
