"""Where this process stands when torchrun launched it (one source for the trainer and the command line)."""
from __future__ import annotations

import os


def rank_and_world(env=os.environ) -> tuple[int, int]:
    """(rank, world size) under torchrun (``WORLD_SIZE`` over 1), else (0, 1): a ``RANK`` that another tool
    left in the environment, or one that is not a number, counts for nothing."""
    rank, world = env.get("RANK", "0"), env.get("WORLD_SIZE", "1")
    if not (rank.isdigit() and world.isdigit() and int(world) > 1 and int(rank) < int(world)):
        return 0, 1
    return int(rank), int(world)
