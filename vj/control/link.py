"""Ableton Link: the show joins a Link session, follows its tempo and bar phase, and tells its peers when
the tempo is set here (a tap, /vj/bpm, a cue).

Needs the ``link`` extra (linkpython-extern, a maintained binding with wheels). Link finds its peers by
multicast on the local network; the tests run it only inside a network namespace of their own.
"""
from __future__ import annotations

import logging

log = logging.getLogger("vj")


class LinkUnavailable(RuntimeError):
    pass


class LinkSession:
    """One Link peer. ``read()`` gives (tempo, beat now) with the phase of a ``quantum``-beat bar."""

    def __init__(self, bpm: float = 120.0, quantum: float = 4.0):
        try:
            import link
        except ImportError:
            raise LinkUnavailable("Ableton Link needs linkpython-extern: pip install 'reframe-vj[link]'") from None
        self.quantum = quantum
        self.link = link.Link(float(bpm))
        self.link.startStopSyncEnabled = False
        self.link.enabled = True
        log.info("link: joined the session (%d peers)", self.link.numPeers())

    def read(self) -> tuple[float, float]:
        state = self.link.captureAppSessionState()
        return state.tempo(), state.beatAtTime(self.link.clock().micros(), self.quantum)

    def set_bpm(self, bpm: float) -> None:
        state = self.link.captureAppSessionState()
        state.setTempo(float(bpm), self.link.clock().micros())
        self.link.commitAppSessionState(state)

    def peers(self) -> int:
        return self.link.numPeers()

    def close(self) -> None:
        self.link.enabled = False
