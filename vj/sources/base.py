"""What every layer source is: one protocol, ``frame(ctx, p) -> (H, W, 3) uint8`` at the render size (or
the same as :class:`vj.mix.Rows`, an upscale the compositor finishes while it mixes).

``ctx`` is the frame's time, beat and index (``vj.effects.FrameContext``); ``p`` holds the source's own
parameter values (drained from the store this frame), named as the class declares them in ``params``:
each source declares its parameters, their ranges and defaults once, there. Sources that do slow work
(decoding clips, running a generator) do it in a worker thread and return their latest frame at once when
``exact`` is False (live); with ``exact`` True (offline render) they compute the exact frame for ``t`` and
may block, so a render is frame-for-frame repeatable.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from vj.core.media import center_crop
from vj.mix import Rows, scale_rows
from vj.params import Param


@dataclass(frozen=True)
class Genre:
    """What a genre gives its sources: its clips, its generator checkpoint, its mosaic run directory."""
    name: str
    clips: Sequence[Path] = ()
    generator: Path | None = None
    mosaic: Path | None = None
    named: frozenset[str] = frozenset()   # the kinds of media the scene named for it ("clips", "generator"...)

    def lacks(self, kind: str) -> Exception:
        """Why a source of ``kind`` cannot be made: the genre never had such media (the layer sits it out),
        or the scene named some that is not there (a failure: black, and said)."""
        if kind in self.named:
            return FileNotFoundError(f"genre {self.name!r}: its {kind} named in the scene are not there")
        return NotInGenre(f"genre {self.name!r} has no {kind}")


class NotInGenre(LookupError):
    """The genre has no media of this kind (a clips-only genre under a generator layer): the layer sits that
    genre out, transparent and without a warning. A source that is named but fails is an error instead."""


@dataclass
class SourceEnv:
    """What the engine hands every source it makes."""
    size: tuple[int, int]                  # (w, h) the source renders at
    exact: bool = False                    # offline: frame-exact, may block
    library: Any = None                    # the engine's shared clip decoder (vj.sources.clip.ClipLibrary)
    device: str = "cpu"                    # torch device for generators
    seed: int = 0                          # per genre: different genres walk and jump differently


class Source:
    """Base class of every source kind. ``kind`` is its name in scenes; ``follows_genre`` sources are made
    once per genre (clips, generator, mosaic) and switch with it; ``params`` are relative to the layer
    (``speed`` becomes ``layer.<name>.speed``)."""

    kind: ClassVar[str] = ""
    follows_genre: ClassVar[bool] = False
    params: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, size: tuple[int, int], exact: bool = False):
        self.size = size
        self.exact = exact

    @classmethod
    def create(cls, env: SourceEnv, genre: Genre | None) -> "Source":
        """Make this kind of source for ``genre`` (None for kinds that do not follow the genre)."""
        return cls(env.size, env.exact)

    @classmethod
    def defaults(cls) -> dict[str, float]:
        return {p.name: p.default for p in cls.params}

    def frame(self, ctx, p: dict[str, float]) -> np.ndarray | Rows:
        raise NotImplementedError

    def transition(self, old: "Source", amount: float, ctx, p: dict[str, float]) -> np.ndarray | None:
        """A genre switch ``amount`` of the way from ``old`` (the previous genre's source of this layer), or
        None for the compositor's crossfade."""
        return None

    def prepare_transition(self, old: "Source") -> None:
        """Do ahead, off the frame loop, what a transition from ``old`` would do on its first frame (the
        layer calls it when it makes a genre's source, for each other genre's source and back)."""

    def command(self, name: str, value: Any = None) -> None:
        """Actions such as ``jump``; sources ignore what they do not know."""

    def close(self) -> None:
        pass


def cover(frame: np.ndarray, size: tuple[int, int], cubic: bool = False) -> Rows:
    """``frame`` scaled to fill ``size`` (w, h), cropping the overflow, as :class:`vj.mix.Rows` (the mix
    finishes the upscale in its row bands). Smooth, never blocky, upscaling."""
    return scale_rows(center_crop(frame, size[0] / size[1]), size, cubic)
