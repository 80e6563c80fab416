"""Control inputs: OSC, MIDI, keys and cue lists all become ``(param, value)`` events for one store."""
from __future__ import annotations


def parse_host_port(text: str | None, what: str, default_port: int | None = None) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``PORT`` (on 127.0.0.1) -> (host, port), or ValueError in one line
    naming ``what``.

    With a ``default_port`` (a server's address) ``HOST`` alone and an empty text are allowed too, and port 0
    (any free port); without one (where to send) the port must be given."""
    text = (text or "").strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = ("127.0.0.1", text) if text.isdigit() or default_port is None else (text, str(default_port))
    example = "8080 or 0.0.0.0:8080" if default_port is not None else "127.0.0.1:9001"
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"{what} {text!r}: expected {'[HOST:]' if default_port is not None else 'HOST:'}PORT, "
                         f"e.g. {example}") from None
    low = 0 if default_port is not None else 1
    if not low <= number <= 65535:
        raise ValueError(f"{what} {text!r}: port must be {low}-65535")
    return host.removeprefix("[").removesuffix("]") or "127.0.0.1", number  # [::1]:8080 -> ::1
