"""Text for people: cut to a byte budget without breaking a character, or to one line."""

from __future__ import annotations


def truncate_utf8(text: str, max_bytes: int, marker: str = "…") -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character, with
    ``marker`` appended when something was cut."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    if len(marker.encode()) > max_bytes:
        marker = ""
    room = max_bytes - len(marker.encode())
    # decoding with "ignore" drops the partial character the byte cut may leave at the end
    return data[:room].decode("utf-8", "ignore") + marker


def one_line(text: str, max_chars: int) -> str:
    """``text`` on one line (runs of white space become one space), at most ``max_chars``
    characters, with "…" at the end when something was cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= max_chars else flat[: max_chars - 1] + "…"
