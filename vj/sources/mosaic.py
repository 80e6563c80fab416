"""The reframe mosaic as a live layer: a mosaic run directory animated at the render size.

The view's maths (pan, zoom, tiles, ripples, morph, flying tiles) is ``mosaic.animate``'s, on arrays; this
layer hands the compositor the view as :class:`vj.mix.Rows`, whose vertical half of the upscale the mix
finishes in its row bands, and mixes a genre switch's two maps with the mix kernels.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from mosaic.animate import MosaicAnimator
from mosaic.pipeline import Built, load_built
from vj.mix import Fade, Rows, scale_rows
from vj.params import Param
from vj.sources.base import Genre, NotInGenre, Source, SourceEnv

MOTION = ("drift", "zoom", "play", "ripple", "follow")  # the animator's view and tile modes (morph apart)


@lru_cache(maxsize=4)
def _shared_built(run: str, stamp: float) -> Built:
    return load_built(run)


def shared_built(run: str | Path) -> Built:
    """One loaded copy of a mosaic per process (genres that share a mosaic share its atlas)."""
    run = Path(run).resolve()
    settings = run / "settings.json"
    return _shared_built(str(run), settings.stat().st_mtime if settings.exists() else 0.0)


def ease(a: float) -> float:
    return a * a * (3 - 2 * a)


class MosaicSource(Source):
    kind = "mosaic"
    follows_genre = True
    params = (
        Param("drift", 0.3, 0, 3, help="pan/zoom speed"),
        Param("zoom", 2.5, 1, 8, help="1: whole map height"),
        Param("play", 1, kind="bool", help="tiles play their videos"),
        Param("ripple", 8, 0, 64, kind="int", help="a ripple of flipping tiles every N beats, and on every kick "
                                                   "with an audio input (0: off)"),
        Param("morph", 0.0, 0, 1, help="0: grid, 1: t-SNE positions"),
        Param("follow", 0.5, 0, 1, help="glide towards the genre's tiles"),
    )

    @classmethod
    def create(cls, env: SourceEnv, genre: Genre | None) -> "MosaicSource":
        if genre is None or genre.mosaic is None:
            raise genre.lacks("mosaic") if genre else NotInGenre("no genre")
        return cls(env.size, genre.mosaic, env.exact, focus=genre.clips, seed=env.seed)

    def __init__(self, size, run_dir, exact: bool = False, focus=(), seed: int = 0):
        super().__init__(size, exact)
        self.animator = MosaicAnimator(shared_built(run_dir), size, seed=seed)
        if focus:
            self.animator.focus_on_sources(focus)
        self.animator.make_masks()  # sources are made off the frame loop
        self._plane: np.ndarray | None = None  # the view's rows, reused between frames
        self._leaving: list | None = None      # a switch's outgoing view, held: [old, view, cells, zoom, amount]

    def frame(self, ctx, p):
        self._leaving = None
        anim = self.animator
        if ctx.audio is not None and ctx.audio.onset_low and p["ripple"] > 0:  # ripples on the kicks too
            anim.ripple(ctx.t)
        visible, z = anim.advance(ctx.t, ctx.beat, *(p[k] for k in MOTION))
        if p["morph"] > 1e-3:
            return anim.morph_frame(visible, z, p["morph"])
        return self._view(z)

    def _view(self, zoom: float) -> np.ndarray | Rows:
        """The view at ``zoom``: zoomed in far enough to enlarge the canvas (the usual case at 1080p) as
        Rows whose horizontal resize the engine runs on both threads (``defer``), else a frame."""
        anim = self.animator
        span = anim.span(anim.view, zoom)
        if span is None or span[0] < 1:
            return anim.warp(anim.canvas, anim.view, zoom)
        (cx0, cy0, cx1, cy1) = span[2]
        rows = scale_rows(anim.canvas[cy0:cy1, cx0:cx1], self.size, rect=span[1], plane=self._plane, defer=True)
        self._plane = rows.plane  # reused next frame: a view is mixed within the frame that asked for it
        return rows

    def transition(self, old, amount, ctx, p):
        """Tiles fly from ``old``'s layout to this map's cells of their nearest frames, this map fading in
        over the old one, dimmed: ``0.35 (1 - a)`` of the old view and ``a`` of the new. The old view is
        held still from the switch's first frame (dimmed and covered by its own tiles in flight, it cost a
        second view's resize and tile updates every frame of the fade); the new one stays rows whose resize
        the engine spreads over its threads, and the mix draws the flying tiles into each band
        (:class:`vj.mix.Fade`): the switch costs no full-frame pass of its own."""
        if not isinstance(old, MosaicSource):
            return None
        motion = [p[k] for k in MOTION]
        held = self._leaving
        if held is None or held[0] is not old or amount <= held[4]:  # a new switch: hold the old view
            visible, z_src = old.animator.advance(ctx.t, ctx.beat, *motion)
            view = old._view(z_src)
            old._plane = None  # the held rows keep that buffer; the old map's next view takes a new one
            held = self._leaving = [old, view, visible, z_src, amount]
        held[4] = amount
        _, view, visible, z_src, _ = held
        anim = self.animator
        _, z = anim.advance(ctx.t, ctx.beat, *motion)
        a = ease(amount)
        tiles = []
        if a < 0.92:                                       # before landing: the old tiles in flight
            tiles = anim.flying_tiles(old.animator, visible, z_src, z, a)
        return Fade(view, self._view(z), 0.35 * (1 - a), a, tuple(self.size), tiles)

    def prepare_transition(self, old):
        if isinstance(old, MosaicSource):
            self.animator.matches(old.animator)
