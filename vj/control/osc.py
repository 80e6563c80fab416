"""OSC in and out. Routing knows no transport (``OscRouter``); the server only feeds it datagrams.

Address space, from the parameter store and the command table: ``/vj/<param path>`` with dots as
slashes (``/vj/layer/clips/opacity 0.5``), every command (``/vj/genre NAME``, ``/vj/cue NAME``,
``/vj/tap``, ``/vj/jump``...) and the aliases (``/vj/bpm X``). Datagrams are untrusted: parsing is bounded
(depth, element count, string size); everything malformed, unknown or out of range is dropped or clamped,
counted, and named in the show log (rate-limited) and on OSC feedback as ``/vj/error``.
"""
from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from typing import Any, Iterable

from vj.commands import ALIASES, COMMANDS, resolve
from vj.params import ParamStore

log = logging.getLogger(__name__)
PREFIX = "/vj/"
RCVBUF = 8 << 20  # a big receive buffer absorbs bursts while the engine renders


def address_of(param: str) -> str:
    return PREFIX + param.replace(".", "/")


MAX_DEPTH = 8           # bundles inside bundles: deeper is hostile, not a controller
MAX_ELEMENTS = 1024     # messages in one datagram
MAX_STRING = 1024       # bytes of a string argument (a genre or cue name)


class OscRouter:
    def __init__(self, store: ParamStore):
        self.store = store

    def handle(self, address: str, args: Iterable[Any]) -> bool:
        """Turn one OSC message into one event; False (and counted, and named) when it was dropped."""
        args = list(args)
        if not address.startswith(PREFIX):
            self.store.drop("unknown address", f"OSC address {address[:80]!r} is not under {PREFIX}", address)
            return False
        name = resolve(address[len(PREFIX):].replace("/", "."))
        command = COMMANDS.get(name)
        if command is not None:
            if command.arg and not (args and isinstance(args[0], str)):
                self.store.drop("bad value", f"{address} needs a {command.arg} name (a string)", address)
                return False
            self.store.push(name, args[0][:MAX_STRING] if command.arg else None, "osc")
            return True
        if name not in self.store:
            self.store.drop("unknown address", f"OSC address {address[:80]!r} is not a parameter or command "
                                               f"(see vj osc --list)", address)
            return False
        if len(args) != 1 or not isinstance(args[0], (int, float, str, bool)):
            self.store.drop("bad value", f"{address} takes one number, got {len(args)} arguments", address)
            return False
        self.store.push(name, args[0], "osc")  # the store clamps, or drops a non-number as "bad value"
        return True

    def handle_datagram(self, data: bytes) -> int:
        """Parse a datagram (message or bundle, bounded: ``MAX_DEPTH`` levels, ``MAX_ELEMENTS`` messages);
        returns the number of messages routed. Nothing in a datagram can raise out of here."""
        simple = parse_simple(data)
        if simple is not None:  # the common case, parsed without python-osc's general machinery
            return int(self.handle(*simple))
        try:
            messages = list(_walk(data))
        except _Hostile as exc:
            self.store.drop("malformed", f"OSC datagram dropped: {exc}")
            return 0
        routed = 0
        for address, args in messages:
            routed += self.handle(address, args)
        return routed


class _Hostile(ValueError):
    pass


def _walk(data: bytes):
    """(address, args) of every message in a datagram, bundles walked with an explicit stack (python-osc's
    own parser recurses, and a bundle nested a few hundred deep raised RecursionError out of it)."""
    import struct

    stack = [(data, 0)]
    count = 0
    while stack:
        dgram, depth = stack.pop()
        if dgram.startswith(b"#bundle\0"):
            if depth >= MAX_DEPTH:
                raise _Hostile(f"bundles nested deeper than {MAX_DEPTH}")
            if len(dgram) < 16 or len(dgram) % 4:
                raise _Hostile("truncated bundle")
            pos, inner = 16, []
            while pos < len(dgram):
                if pos + 4 > len(dgram):
                    raise _Hostile("truncated bundle")
                (size,) = struct.unpack_from(">i", dgram, pos)
                if size <= 0 or pos + 4 + size > len(dgram):
                    raise _Hostile("bad bundle element size")
                inner.append((dgram[pos + 4:pos + 4 + size], depth + 1))
                pos += 4 + size
                if len(inner) > MAX_ELEMENTS:
                    raise _Hostile(f"more than {MAX_ELEMENTS} elements")
            stack.extend(reversed(inner))  # in order
            continue
        count += 1
        if count > MAX_ELEMENTS:
            raise _Hostile(f"more than {MAX_ELEMENTS} messages")
        simple = parse_simple(dgram)
        if simple is None:
            simple = _general_message(dgram)
        yield simple


def _general_message(dgram: bytes):
    """A message ``parse_simple`` does not take (blobs, arrays, MIDI...), by python-osc."""
    from pythonosc.osc_message import OscMessage

    if not dgram.startswith(b"/"):
        raise _Hostile("not an OSC message")
    try:
        msg = OscMessage(dgram)
        return msg.address, msg.params
    except Exception as exc:  # noqa: BLE001 - any parse failure of untrusted bytes
        raise _Hostile(f"unreadable message ({type(exc).__name__})") from None


class _LibraryLogs(logging.Filter):
    """Takes python-osc's records off the root logger and hands them to the current show's store."""
    store: ParamStore | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if "pythonosc" not in record.pathname or self.store is None:
            return True
        self.store.drop("malformed")
        self.store.guard.warn("python-osc", "OSC: python-osc could not read part of a datagram")
        return False


_LIBRARY_LOGS = _LibraryLogs()


def route_library_logs(store: ParamStore) -> None:
    """python-osc writes warnings about odd datagrams to the root logger, raw bytes included (twenty 65 KB
    bundles wrote 325,252 lines). Its records are counted as dropped input and logged by the show's guard
    (rate-limited) instead."""
    _LIBRARY_LOGS.store = store
    root = logging.getLogger()
    if _LIBRARY_LOGS not in root.filters:
        root.addFilter(_LIBRARY_LOGS)


_ARG = {ord("f"): (">f", 4), ord("i"): (">i", 4), ord("d"): (">d", 8), ord("h"): (">q", 8)}


def parse_simple(data: bytes):
    """(address, args) of a plain OSC message with numeric, string, true/false arguments, or None.

    A flood of controller messages is parsed here in a few microseconds each, so the receiving thread
    leaves the interpreter lock to the render loop; anything else (bundles, blobs) returns None and goes
    through python-osc.
    """
    import struct

    if not data.startswith(b"/"):
        return None
    end = data.find(b"\0")
    if end < 0:
        return None
    address = data[:end].decode("ascii", "replace")
    pos = (end + 4) & ~3
    if data[pos:pos + 1] != b",":
        return None
    tend = data.find(b"\0", pos)
    if tend < 0:
        return None
    tags = data[pos + 1:tend]
    pos = (tend + 4) & ~3
    args = []
    try:
        for t in tags:
            if t in _ARG:
                fmt, size = _ARG[t]
                args.append(struct.unpack_from(fmt, data, pos)[0])
                pos += size
            elif t == ord("s"):
                send = data.index(b"\0", pos)
                args.append(data[pos:send].decode("utf-8", "replace"))
                pos = (send + 4) & ~3
            elif t in (ord("T"), ord("F")):
                args.append(t == ord("T"))
            else:
                return None
    except (struct.error, ValueError):
        return None
    if pos > len(data):
        return None
    return address, args


POLL_WAIT = 0.002  # seconds the frame loop waits for the receiver thread to finish its slice


class OscServer:
    """A UDP listener on its own thread; listens on 127.0.0.1 unless the user opens it."""

    def __init__(self, router: OscRouter, host: str = "127.0.0.1", port: int = 9000,
                 allow: Iterable[str] | None = None):
        self.router = router
        self.allow = set(allow or ())
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            why = "is in use (another vj live?)" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror})"
            raise ValueError(f"OSC port {host}:{port} {why}: pick another --osc-port") from None
        route_library_logs(router.store)
        self.batch_wait = 0.01   # seconds between batches (the frame loop also polls before every frame)
        self.slice = 32          # datagrams routed per hold of the interpreter lock (~0.15 ms)
        self._commands = {(PREFIX + c).encode() for c in COMMANDS}  # never merged in a burst
        self.address = self.sock.getsockname()
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.sock.setblocking(False)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="osc-in", daemon=True)
        self._thread.start()
        log.info("OSC listening on %s:%d (try: vj osc --list)", *self.address)

    def _serve(self) -> None:
        """Wake at most every ``batch_wait`` seconds and take every datagram waiting.

        A thread that wakes for each of 10,000 datagrams a second steals the interpreter lock from the
        render loop 10,000 times (the GIL "convoy"); taking them in batches keeps frame times steady, and
        the large receive buffer holds what arrives in between. The engine also calls ``poll`` at the
        start of every frame, so a message that arrived during a frame is in the next one, always.
        """
        import select

        self.sock.setblocking(False)
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.2)
            while ready:  # in slices, letting go of the interpreter between them: the frame loop never waits
                with self._lock:
                    taken = self._take(self.slice)
                if taken < 0:
                    return
                ready = taken == self.slice  # a full slice: more may be waiting
                time.sleep(0)
            self._stop.wait(self.batch_wait)

    def poll(self, limit: int = 32) -> None:
        """For the frame loop: route up to ``limit`` waiting datagrams now, unless the thread is at it.

        One message (a fader move, a genre switch) is in the very next frame; in a flood the loop takes a
        few and leaves the rest to the thread, so input never costs the frame more than a fraction of a ms.
        If the thread is routing a slice, the loop waits for it (a slice takes ~0.15 ms; at most
        ``POLL_WAIT``, for a thread the OS took off the core mid-slice): without the wait, a message the
        thread had just read reached the store after the frame had started, and missed it (1 in 40).
        """
        if self._lock.acquire(timeout=POLL_WAIT):  # the thread and the loop take turns: arrival order is kept
            try:
                self._take(limit)
            finally:
                self._lock.release()

    def _take(self, limit: int) -> int:
        """Route up to ``limit`` waiting datagrams in arrival order; how many were read, -1 once closed.

        A burst that moves one parameter many times (a fader, a flood) is parsed once: only its last value
        would survive the frame anyway. Commands (genre, cue, tap...) each count and are never merged.
        """
        latest: dict[bytes, bytes] = {}   # parameter address -> its newest datagram in this slice
        merged = taken = 0
        while taken < limit:
            try:
                data, sender = self.sock.recvfrom(65536)
            except BlockingIOError:
                break
            except OSError:
                taken = -1
                break
            taken += 1
            if self.allow and sender[0] not in self.allow:
                self.router.store.drop("sender not allowed")
                continue
            end = data.find(b"\0", 1) if data[:1] == b"/" else -1
            address = data[:end] if end > 0 else None
            if address is not None and address not in self._commands:
                merged += address in latest
                latest.pop(address, None)  # re-inserted last: a parameter keeps its place after commands
                latest[address] = data
                continue
            for d in latest.values():      # a command: what came before it goes first
                self.router.handle_datagram(d)
            latest.clear()
            self.router.handle_datagram(data)
        for d in latest.values():
            self.router.handle_datagram(d)
        if merged:
            self.router.store.supersede(merged)
        return taken

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self.sock.close()


class OscFeedback:
    """Sends every change (parameters, the genre, control errors) back to a controller, e.g. TouchOSC:
    ``/vj/<param> value``, ``/vj/genre name``, ``/vj/error "unknown genre 'Photo' (known: ...)"``."""

    def __init__(self, host: str, port: int):
        from pythonosc.udp_client import SimpleUDPClient

        self.client = SimpleUDPClient(host, port)

    def __call__(self, name: str, value: Any) -> None:
        """A store listener (``ParamStore.on_change``)."""
        try:
            if isinstance(value, str):
                self.client.send_message(PREFIX + name.replace(".", "/"), value)
            else:
                self.client.send_message(address_of(name), float(value))
        except OSError as exc:  # a controller that went away must not stop the show
            log.debug("OSC feedback failed: %s", exc)

    def send_state(self, store: ParamStore) -> None:
        """Everything a controller shows, once (at start): the state (genre...), then every parameter."""
        for name, value in store.state.items():
            self(name, value)
        for name, value in store.values.items():
            self(name, value)

    def close(self) -> None:
        self.client._sock.close()


def address_table(store: ParamStore, genres: Iterable[str] = (), cues: Iterable[str] = ()) -> list[tuple[str, str, str, str]]:
    """(address, range, default, help) for every address, for ``vj osc --list`` and the README: every
    parameter, every command (genre and cue with the scene's names), and the aliases."""
    rows = [(address_of(p.name), p.describe(), p.shown(p.coerce(p.default)),
             p.help + (" (read-only: sent, not received)" if p.readonly else "")) for p in store.params.values()]
    names = {"genre": "|".join(genres) or "genre name", "cue": "|".join(cues) or "cue name",
             "param": "parameter name"}
    for c in COMMANDS.values():
        rows.append((PREFIX + c.name, names.get(c.arg, ""), "", c.help))
    for alias, target in ALIASES.items():
        p = store.params.get(target)
        rows.append((PREFIX + alias, p.describe() if p else "", "", f"the same as {address_of(target)}"))
    return rows
