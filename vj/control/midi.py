"""MIDI in: mapped controls, notes and clock become events; ports come back after a re-plug.

Needs the ``midi`` extra (python-rtmidi). ``VJ_MIDI_BACKEND`` picks mido's backend, e.g.
``mido.backends.rtmidi/UNIX_JACK`` to use a JACK server instead of ALSA.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from vj.control.mapping import Mapping, learn, map_message, save_mapping
from vj.params import ParamStore

log = logging.getLogger(__name__)


class MidiUnavailable(RuntimeError):
    pass


@contextlib.contextmanager
def quiet_stderr():
    """ALSA's C library prints its own errors (``ALSA lib seq_hw.c: open /dev/snd/seq failed``) straight to
    file descriptor 2 when there is no MIDI system; our one line says it better."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def backend():
    """mido's backend, or MidiUnavailable with one line saying how to get it."""
    try:
        import mido

        be = mido.Backend(os.environ.get("VJ_MIDI_BACKEND", "mido.backends.rtmidi"), load=True)
        with quiet_stderr():
            be.get_input_names()
        return be
    except ImportError:
        raise MidiUnavailable("MIDI needs python-rtmidi: pip install 'reframe-vj[midi]'") from None
    except Exception as exc:  # rtmidi raises its own SystemError when no MIDI system is running
        raise MidiUnavailable(f"no MIDI system available ({exc}); on Linux start ALSA or JACK "
                              f"(VJ_MIDI_BACKEND=mido.backends.rtmidi/UNIX_JACK)") from None


class ClockFollower:
    """MIDI clock (24 pulses per beat) -> BPM, pushed once per beat when it moved by > 0.5 BPM."""

    def __init__(self, store: ParamStore):
        self.store = store
        self.ticks: list[float] = []
        self.last_bpm = 0.0

    def message(self, msg, now: float) -> None:
        if msg.type == "start":
            self.ticks = []
        elif msg.type == "clock":
            self.ticks = (self.ticks + [now])[-49:]
            if len(self.ticks) >= 25 and len(self.ticks) % 24 == 1:
                bpm = 60.0 / ((self.ticks[-1] - self.ticks[-25]))
                if abs(bpm - self.last_bpm) > 0.5:
                    self.last_bpm = bpm
                    self.store.push("bpm", round(bpm, 2), "midi clock")


class MidiControl:
    """Listens on every input port whose name contains ``port`` (all ports when empty)."""

    def __init__(self, store: ParamStore, mapping: Mapping, port: str = "", mapping_path=None, poll: float = 1.0):
        self.backend = backend()
        self.store = store
        self.mapping = mapping
        self.mapping_path = mapping_path
        self.pattern = port
        self.clock = ClockFollower(store)
        self.armed: str | None = None     # MIDI learn: the parameter waiting for a control
        self.ports: dict[str, object] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.poll = poll
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="midi-hotplug", daemon=True)
        self._thread.start()

    def arm(self, param: str) -> None:
        """MIDI learn: the next control moved is bound to ``param`` and the mapping is saved."""
        self.armed = param
        log.info("MIDI learn: move a control for %s", param)

    def on_message(self, msg) -> None:
        if self.armed and msg.type in ("control_change", "note_on"):
            learn(self.mapping, self.armed, msg)
            log.info("MIDI learn: %s -> %s", msg, self.armed)
            self.armed = None
            if self.mapping_path:
                save_mapping(self.mapping, self.mapping_path)
            return
        if self.mapping.follow_clock and msg.type in ("clock", "start"):
            self.clock.message(msg, time.perf_counter())
            return
        for name, value in map_message(self.mapping, msg, self.store.params):
            self.store.push(name, value, "midi")

    def refresh(self) -> None:
        """Open new matching ports, forget vanished ones (hot-plug)."""
        try:
            names = [n for n in self.backend.get_input_names() if self.pattern.lower() in n.lower()]
        except Exception:  # noqa: BLE001 - the MIDI system itself went away; try again next poll
            names = []
        with self._lock:
            for name in list(self.ports):
                if name not in names:
                    log.info("MIDI port gone: %s", name)
                    try:
                        self.ports.pop(name).close()
                    except Exception:  # noqa: BLE001
                        pass
            for name in names:
                if name not in self.ports:
                    try:
                        self.ports[name] = self.backend.open_input(name, callback=self.on_message)
                        log.info("MIDI port open: %s", name)
                    except Exception as exc:  # noqa: BLE001
                        log.warning("MIDI port %s could not be opened: %s", name, exc)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            self.refresh()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            for p in self.ports.values():
                p.close()
            self.ports.clear()
