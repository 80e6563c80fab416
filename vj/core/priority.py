"""Thread priorities: workers that run ahead (decoders, a live generator, sample writers, previews) take
what the thread that matters (the frame loop, the training step) leaves."""
from __future__ import annotations

import os
import threading


def background_priority(nice: int = 19) -> None:
    """Lower this thread's CPU priority (Linux) to the least share the scheduler gives: workers that run
    ahead (decoding, a live generator) get what the frame loop leaves, and a waking mix thread preempts
    them at once. Not ``SCHED_IDLE``: a show that overloads the machine must still see a new generator
    image now and then, not a frozen layer. Children started from this thread (ffmpeg) inherit it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):
        pass
