"""The common WebSocket frame of OCPP-J, read and written without wsproto's general machinery.

Nearly every frame a charge point sends is one whole, unfragmented, masked text frame, and every
frame the gateway sends is one unmasked text frame (RFC 6455 §5.2). wsproto handles each through
a general frame parser, a message decoder, an incremental UTF-8 decoder and event objects: about a
third of the Python work of a round trip (``python -m bench.hotpath``). These functions do only the
common case and say "not mine" (None) for anything else, which then goes through wsproto as before.
"""

from __future__ import annotations

_FIN_TEXT = 0x81        # FIN set, no RSV bits, opcode 1 (text)
_MASKED = 0x80
_LENGTH = 0x7F
_TWO_BYTE_LENGTH = 126  # the length follows in 2 bytes
_SHORTEST_MASKED_FRAME = 6  # 2 header bytes and the 4-byte masking key


def unmask(payload: bytes, key: bytes) -> bytes:
    """`payload` XOR-ed with the 4-byte masking `key` repeated (RFC 6455 §5.3)."""
    size = len(payload)
    if not size:
        return b""
    repeated = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(size, "little")


def client_texts(data: bytes, max_size: int = 0) -> list[str] | None:
    """The messages of `data` when it is nothing but whole, unfragmented, masked text frames of valid
    UTF-8, each with at most `max_size` bytes of payload (0: no limit) and a length of at most 2 bytes
    in its shortest form; None for anything else (a control frame, a fragment, a frame cut by the read,
    a longer or over-long frame, bad UTF-8), which wsproto must then parse and answer."""
    texts = []
    position, end = 0, len(data)
    while position < end:
        if end - position < _SHORTEST_MASKED_FRAME or data[position] != _FIN_TEXT:
            return None
        second = data[position + 1]
        if not second & _MASKED:
            return None
        size = second & _LENGTH
        position += 2
        if size == _TWO_BYTE_LENGTH:
            size = int.from_bytes(data[position:position + 2], "big")
            position += 2
            if size < _TWO_BYTE_LENGTH:  # not the shortest form, which wsproto refuses
                return None
        elif size > _TWO_BYTE_LENGTH:
            return None
        stop = position + 4 + size
        if stop > end or (max_size and size > max_size):
            return None
        try:
            texts.append(unmask(data[position + 4:stop], data[position:position + 4]).decode("utf-8"))
        except UnicodeDecodeError:
            return None
        position = stop
    return texts


def server_text(text: str) -> bytes:
    """One unmasked, unfragmented text frame holding `text`."""
    payload = text.encode("utf-8")
    size = len(payload)
    if size < _TWO_BYTE_LENGTH:
        header = bytes((_FIN_TEXT, size))
    elif size < 1 << 16:
        header = bytes((_FIN_TEXT, _TWO_BYTE_LENGTH)) + size.to_bytes(2, "big")
    else:
        header = bytes((_FIN_TEXT, _LENGTH)) + size.to_bytes(8, "big")
    return header + payload
