"""OSC in and out. Routing knows no transport (``OscRouter``); the server only feeds it datagrams.

Address space, from the parameter catalogue: ``/vj/<param path>`` with dots as slashes
(``/vj/layer/clips/opacity 0.5``), plus ``/vj/genre NAME``, ``/vj/cue NAME``, ``/vj/tap``, ``/vj/bpm X``
and ``/vj/jump``. Everything malformed, unknown or out of range is dropped or clamped and counted.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Iterable

from vj.params import COMMANDS, ParamStore

log = logging.getLogger(__name__)
PREFIX = "/vj/"
RCVBUF = 8 << 20  # a big receive buffer absorbs bursts while the engine renders


def address_of(param: str) -> str:
    return PREFIX + param.replace(".", "/")


class OscRouter:
    def __init__(self, store: ParamStore):
        self.store = store

    def handle(self, address: str, args: Iterable[Any]) -> bool:
        """Turn one OSC message into one event; False (and counted) when it was dropped."""
        args = list(args)
        if not address.startswith(PREFIX):
            self.store.drop("unknown address")
            return False
        name = address[len(PREFIX):].replace("/", ".")
        if name in COMMANDS:
            if name in ("genre", "cue") and not (args and isinstance(args[0], str)):
                self.store.drop("bad value")
                return False
            if name == "bpm" and not (args and isinstance(args[0], (int, float)) and not isinstance(args[0], bool)):
                self.store.drop("bad value")
                return False
            self.store.push(name, args[0] if args else None, "osc")
            return True
        if name not in self.store:
            self.store.drop("unknown address")
            return False
        if len(args) != 1 or not isinstance(args[0], (int, float, str, bool)):
            self.store.drop("bad value")
            return False
        self.store.push(name, args[0], "osc")  # the store clamps, or drops a non-number as "bad value"
        return True

    def handle_datagram(self, data: bytes) -> int:
        """Parse a datagram (message or bundle); returns the number of messages routed."""
        simple = parse_simple(data)
        if simple is not None:  # the common case, parsed without python-osc's general machinery
            return int(self.handle(*simple))
        from pythonosc.osc_packet import OscPacket, ParseError

        try:
            packet = OscPacket(data)
        except (ParseError, ValueError, IndexError, TypeError, OverflowError):
            self.store.drop("malformed")
            return 0
        routed = 0
        for timed in packet.messages:
            routed += self.handle(timed.message.address, timed.message.params)
        return routed


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
        self.sock.bind((host, port))
        self.batch_wait = 0.01   # seconds between batches (the frame loop also polls before every frame)
        self.slice = 32          # datagrams routed per hold of the interpreter lock (~0.15 ms)
        self._commands = {(PREFIX + c).encode() for c in COMMANDS}
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
    """Sends every applied parameter change (and genre switches) back to a controller, e.g. TouchOSC."""

    def __init__(self, host: str, port: int):
        from pythonosc.udp_client import SimpleUDPClient

        self.client = SimpleUDPClient(host, port)

    def param(self, name: str, value: float) -> None:
        try:
            self.client.send_message(address_of(name), float(value))
        except OSError as exc:  # a controller that went away must not stop the show
            log.debug("OSC feedback failed: %s", exc)

    def genre(self, name: str) -> None:
        try:
            self.client.send_message(PREFIX + "genre", name)
        except OSError as exc:
            log.debug("OSC feedback failed: %s", exc)

    def close(self) -> None:
        self.client._sock.close()


def address_table(store: ParamStore) -> list[tuple[str, str, str, str]]:
    """(address, range, default, help) for every address, for ``vj osc --list`` and the README."""
    rows = [(address_of(p.name), p.describe(), f"{p.default:g}" if p.kind != "choice" else p.choices[int(p.default)],
             p.help) for p in store.params.values()]
    rows += [(PREFIX + "genre", "genre name", "", "switch genre (clips, generator, mosaic) with a crossfade"),
             (PREFIX + "cue", "cue name", "", "fire a named cue from the cue list"),
             (PREFIX + "tap", "", "", "tap tempo"),
             (PREFIX + "bpm", "20..300", "", "set the tempo"),
             (PREFIX + "jump", "", "", "jump clip layers to a random clip and position")]
    return rows
