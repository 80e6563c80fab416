"""The animated reframe mosaic: the view's maths on arrays (the engine's layer is ``vj.sources.mosaic``).

The whole map is rendered once into a canvas; a frame is one affine warp of the current view (pan and
zoom) to the output size. Tiles that change (playing their video, flipping in a ripple) are pasted into
the canvas one cell at a time, so a frame costs a warp plus a few small pastes, never a full redraw.
Only ``morph`` (tiles flying between their grid cells and their t-SNE positions) draws tiles per frame.

Modes, all plain named parameters the engine can drive:
  drift   pan/zoom speed along a slow Lissajous path (0 holds still)
  zoom    1 shows the whole map height, 8 a few tiles
  play    1: visible tiles play their own video from their timestamp
  ripple  every N beats a wave of tiles flips to their nearest neighbours (0: off)
  morph   0: grid; 1: every tile at its t-SNE position
On a genre switch the old layout's tiles fly to the cells of the new map that show their nearest frames
(``flying_tiles``) while the new map fades in.
  follow  0: drift only; 1: glide to the focus (the genre's tiles, or a frame given to ``follow_frame``)
"""
from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from mosaic.pipeline import Built
from mosaic.render import canvas_size, layout_maps, render_poster
from mosaic.search import unit


THUMBS_PER_FRAME = 40  # flying-tile thumbnails made per frame of a genre switch (the others wait a frame)


class MosaicAnimator:
    READY_BYTES = 64 << 20  # resized tiles kept for pasting again (a cell loops a few frames)
    # at most this many cells change in one frame: a map's first frame (a genre switch, a jump of the view)
    # would otherwise paste every visible cell at once (193 at 1080p: 54 ms, a visible stall); the rest
    # follow in the next frames, starting where the budget ran out (steady playing needs about 13 a frame)
    PASTES_PER_FRAME = 64

    def __init__(self, built: Built, size: tuple[int, int] = (1920, 1080), tile: int | None = None, seed: int = 0):
        self.built = built
        self.size = size
        cols, rows, layout = built.cols, built.rows, built.layout
        # canvas tile: enough pixels that zooming in to ~8 tiles across stays sharp, capped for memory
        self.tile = tile or int(min(160, max(48, size[1] * 6 // (rows * 2) // 8 * 8)))
        t = self.tile
        self.canvas = render_poster(built.atlas, built.grid, layout, cols, rows, t)
        self.base = self.canvas.copy()
        self.cw, self.ch = canvas_size(layout, cols, rows, t)
        cell_map, local = layout_maps(layout, cols, rows, t)
        from scipy import ndimage

        self._slices = ndimage.find_objects(cell_map + 1)   # bounding box of each cell
        self._cell_map, self._local = cell_map, local
        self._masks: dict[int, tuple] = {}
        self.shown: dict[int, tuple] = {}                    # cell -> what is pasted now (None = base)
        # cell -> {token: resized pixels to paste}, least recently pasted cell first
        self._ready: OrderedDict[int, dict] = OrderedDict()
        self._ready_bytes = 0
        self._visible: set[int] = set()
        self._rotor = 0                                         # where the next frame's tile updates start
        self.centers = np.array([[(s[1].start + s[1].stop) / 2, (s[0].start + s[0].stop) / 2]
                                 for s in self._slices], np.float32)   # (cells, 2) canvas px
        self.n_cells = len(self._slices)
        self.rng_seed = seed
        self.phase = 0.0
        self.view = np.array([self.cw / 2, self.ch / 2], np.float64)
        self.focus: np.ndarray | None = None
        self.last_t: float | None = None
        self.ripples: list[tuple[float, int]] = []            # (start time, origin cell)
        self.last_ripple_beat = -1
        self._neighbour = self._nearest_other_frames()
        coords = built.coords[built.grid]
        lo, hi = coords.min(0), coords.max(0)
        self.tsne_px = ((coords - lo) / np.maximum(hi - lo, 1e-9) * [self.cw * 0.9, self.ch * 0.9]
                        + [self.cw * 0.05, self.ch * 0.05]).astype(np.float32)
        self._thumbs: dict[tuple[int, int], np.ndarray] = {}
        strips = built.strips
        # in memory, not memory-mapped: a tile paste must not pay a page-in on the frame loop
        self._strips = np.array(strips) if strips is not None and len(strips) == self.n_cells else None
        k = self._strips.shape[1] if self._strips is not None else 1
        self._phase = ((np.arange(self.n_cells) * 0.6180339887 % 1.0) * k).tolist()  # golden-ratio spread
        self._extractor = None
        # per other map (by id of its Built): (that Built, this map's cell for each of its cells)
        self._match: dict[int, tuple[object, np.ndarray]] = {}

    # ------------------------------------------------------------ pasting single cells
    def make_masks(self) -> None:
        """Every cell's paste mask now (callers that make animators off the frame loop): a map's first
        frame pastes about 200 cells at 1080p and spent 36 ms making their masks."""
        for cell in range(self.n_cells):
            self._mask(cell)

    def _mask(self, cell: int):
        """(bbox slices, (h, w) uint8 mask, tile window or None): most cells read their tile as one window."""
        if cell not in self._masks:
            sl = self._slices[cell]
            mask = self._cell_map[sl] == cell
            local = self._local[sl]
            h, w = local.shape
            # the window applies when the cell's own pixels read its tile at a fixed offset (all but edge cells)
            v0, u0 = divmod(int(local[mask][0]), self.tile)
            v0 -= int(np.argmax(mask.any(1)))
            u0 -= int(np.argmax(mask[np.argmax(mask.any(1))]))
            ident = (np.arange(h)[:, None] + v0) * self.tile + (np.arange(w)[None, :] + u0)
            fits = v0 >= 0 and u0 >= 0 and v0 + h <= self.tile and u0 + w <= self.tile
            window = (slice(v0, v0 + h), slice(u0, u0 + w)) if fits and np.array_equal(local[mask], ident[mask]) \
                else None
            self._masks[cell] = (sl, mask.astype(np.uint8), window, local[mask])
        return self._masks[cell]

    def paste(self, cell: int, tile_img: np.ndarray | None, token) -> None:
        """Show ``tile_img`` (any size, square) in ``cell``; None restores the cell's own frame."""
        if self.shown.get(cell) == token:
            return
        sl, mask, window, local = self._mask(cell)
        if tile_img is None:
            src = self.base[sl]
        elif window is not None and token in self._ready.get(cell, ()):  # a playing tile's frame, seen before
            src = self._ready[cell][token]
            self._ready.move_to_end(cell)
        else:
            if tile_img.shape[0] != self.tile:
                tile_img = cv2.resize(np.ascontiguousarray(tile_img), (self.tile, self.tile),
                                      interpolation=cv2.INTER_LINEAR)
            if window is None:  # an edge cell whose pixels repeat tile pixels: gather them
                self.canvas[sl][mask.astype(bool)] = tile_img.reshape(-1, 3)[local]
                self.shown[cell] = token
                return
            src = self._remember(cell, token, np.ascontiguousarray(tile_img[window]))
        cv2.copyTo(src, mask, self.canvas[sl])  # in place, 5x np.copyto(where=)
        self.shown[cell] = token

    def _remember(self, cell: int, token, src: np.ndarray) -> np.ndarray:
        """Keep a cell's resized tile pixels for the next time it shows them (a playing tile loops its
        strip): a paste is then one masked copy. Within READY_BYTES, cells that left the view go first,
        least recently pasted first; when every kept cell is in view, a new frame is not kept. (Evicting
        the least recent *frame* instead, when the view's frames do not all fit, drops each frame just
        before it comes round again: on the 1080p benchmark show it kept 64 MB and hit 0 times.)"""
        if token is None:
            return src
        while self._ready_bytes + src.nbytes > self.READY_BYTES and self._ready:
            oldest = next(iter(self._ready))
            if oldest in self._visible:
                return src
            self._ready_bytes -= sum(a.nbytes for a in self._ready.pop(oldest).values())
        if self._ready_bytes + src.nbytes <= self.READY_BYTES:
            self._ready.setdefault(cell, {})[token] = src
            self._ready.move_to_end(cell)
            self._ready_bytes += src.nbytes
        return src

    def _nearest_other_frames(self) -> np.ndarray:
        """For each cell, the frame nearest in feature space to the cell's frame (itself excluded)."""
        f = unit(self.built.features)
        g = self.built.grid
        sims = f[g] @ f.T                         # (cells, frames)
        sims[np.arange(len(g)), g] = -np.inf
        return sims.argmax(1)

    # ------------------------------------------------------------ view
    def visible_cells(self, center, zoom) -> np.ndarray:
        vh = self.ch / zoom
        vw = vh * self.size[0] / self.size[1]
        lo = np.array([center[0] - vw / 2 - self.tile, center[1] - vh / 2 - self.tile])
        hi = np.array([center[0] + vw / 2 + self.tile, center[1] + vh / 2 + self.tile])
        inside = np.all((self.centers >= lo) & (self.centers <= hi), axis=1)
        return np.flatnonzero(inside)

    def follow_point(self, xy: np.ndarray | None) -> None:
        """Glide towards canvas point ``xy`` (None: drift freely)."""
        self.focus = None if xy is None else np.asarray(xy, np.float64)

    def focus_on_sources(self, paths) -> bool:
        """Focus on the cells whose frames come from ``paths`` (e.g. a genre's videos)."""
        wanted = {str(Path(p).resolve()) for p in paths}
        cells = [c for c, fr in enumerate(self.built.grid) if str(Path(self.built.index[fr][0]).resolve()) in wanted]
        if not cells:
            return False
        self.follow_point(self.centers[cells].mean(0))
        return True

    def follow_frame(self, frame: np.ndarray, k: int = 8) -> np.ndarray:
        """Glide to the tiles nearest to any frame (e.g. the GAN's output); returns those cells."""
        from vj.core.features import FeatureExtractor

        if self._extractor is None:
            self._extractor = FeatureExtractor(self.built.settings.get("backbone", "efficientnet_lite0"))
        q = self._extractor(frame[None])[0]
        f = np.asarray(self.built.features, np.float32)[self.built.grid]
        d = 1 - unit(f) @ unit(q)
        cells = np.argsort(d)[:k]
        self.follow_point(self.centers[cells].mean(0))
        return cells

    # ------------------------------------------------------------ one frame
    def frame(self, t: float, beat: float = 0.0, drift: float = 0.3, zoom: float = 2.5, play: float = 1.0,
              ripple: float = 8.0, morph: float = 0.0, follow: float = 0.5) -> np.ndarray:
        """The frame at time ``t`` (see the module's list of modes)."""
        visible, z = self.advance(t, beat, drift, zoom, play, ripple, follow)
        if morph > 1e-3:
            return self.morph_frame(visible, z, morph)
        return self.warp(self.canvas, self.view, z)

    def flying_tiles(self, src: "MosaicAnimator", visible: np.ndarray, z_src: float, z: float,
                     a: float) -> list[tuple[np.ndarray, int, int]]:
        """A genre switch ``a`` (eased, 0..1) of the way from ``src``'s layout to this one: ``src``'s
        ``visible`` tiles on their way to the cells of this map that show their nearest frames (the same
        frame when both maps hold it), as (thumbnail, x, y) to draw in order. ``z_src``, ``z``: the two
        maps' zooms this frame."""
        w, h = self.size
        sa, sb = h * z_src / src.ch, h * z / self.ch        # output px per canvas px, each map
        target = self.matches(src)[visible]
        pa = (src.centers[visible] - src.view) * sa
        pb = (self.centers[target] - self.view) * sb
        # whole steps of 4 px: the thumbnails of one size serve several frames (a new size every frame
        # resized every flying tile again, every frame)
        side = max(4, int(((1 - a) * src.tile * sa + a * self.tile * sb) * 0.8) // 4 * 4)
        xy = ((1 - a) * pa + a * pb + [w / 2, h / 2] - side / 2).astype(int)
        keep = (xy[:, 0] > -side) & (xy[:, 0] < w) & (xy[:, 1] > -side) & (xy[:, 1] < h)
        # a switch's first frame needs every tile at a new size (154 resizes, 6-12 ms at 1080p): at most
        # THUMBS_PER_FRAME are made a frame, the others fly at their tile's own size until theirs exist
        tiles, made = [], 0
        for cell, (x, y) in zip(visible[keep].tolist(), xy[keep].tolist()):
            thumb = src._thumbs.get((cell, side))
            if thumb is None and made < THUMBS_PER_FRAME:
                thumb, made = src._thumb(cell, side), made + 1
            if thumb is None:
                thumb = np.asarray(src.built.atlas[src.built.grid[cell]])
                x, y = x + (side - thumb.shape[1]) // 2, y + (side - thumb.shape[0]) // 2  # the same centre
            tiles.append((thumb, x, y))
        return tiles

    def matches(self, src: "MosaicAnimator") -> np.ndarray:
        """For each cell of ``src``, the cell of this map whose frame is nearest in feature space; once per
        pair of maps (a 450-cell pair took 32 ms on the frame loop at the first switch: live, the layer
        asks for it ahead, off the frame loop, when it makes a genre's source)."""
        hit = self._match.get(id(src.built))
        if hit is None or hit[0] is not src.built:
            fa = unit(np.asarray(src.built.features)[src.built.grid])
            fb = unit(np.asarray(self.built.features)[self.built.grid])
            hit = self._match[id(src.built)] = (src.built, (fa @ fb.T).argmax(1))
        return hit[1]

    def advance(self, t: float, beat: float, drift: float, zoom: float, play: float, ripple: float,
                 follow: float) -> tuple[np.ndarray, float]:
        """Move the view and update the tiles for time ``t``; returns the visible cells and the zoom."""
        first = self.last_t is None
        dt = 0.0 if first else max(0.0, min(0.5, t - self.last_t))
        self.last_t = t
        self.phase += dt * drift
        p = self.phase
        path = np.array([self.cw * (0.5 + 0.32 * math.sin(p * 0.37)), self.ch * (0.5 + 0.32 * math.sin(p * 0.23 + 1.0))])
        target = path if self.focus is None else (1 - follow) * path + follow * self.focus
        z = max(1.0, zoom * (1 + 0.15 * math.sin(p * 0.19)))
        if first:
            self.view[:] = target
        else:
            self.view += (target - self.view) * (1 - math.exp(-dt / 1.5))
        self.view[:] = self.inside(self.view, z)
        visible = self.visible_cells(self.view, z)
        self._update_tiles(t, beat, visible, play, ripple)
        return visible, z

    def inside(self, center: np.ndarray, zoom: float) -> np.ndarray:
        """``center`` moved as little as needed for the view at ``zoom`` to stay on the map: the drift and
        a focus near an edge never pan into black (a band of 188 of 960 px grew on the demo's map). Where
        the map is narrower than the view (zoomed out), the view is centred on it."""
        half_h = self.ch / zoom / 2
        half = np.array([half_h * self.size[0] / self.size[1], half_h]) + 1.0  # a pixel's margin: rounding
        extent = np.array([self.cw, self.ch], np.float64)
        lo, hi = half, extent - half
        return np.where(lo <= hi, np.clip(center, lo, hi), extent / 2)

    def span(self, center, zoom: float) -> tuple[float, tuple, tuple] | None:
        """Where the view of ``center`` at ``zoom`` falls: (output px per canvas px, output rect x0, y0,
        x1, y1, canvas rect x0, y0, x1, y1), or None when it shows none of the map.

        The crop starts on a whole canvas pixel and spans whole pixels, so the view sits within a canvas
        pixel of the exact pan and zoom: at 60 fps the drift stays smooth.
        """
        w, h = self.size
        s = h * zoom / self.ch                          # output px per canvas px
        spans = []
        for n_out, c, n_canvas in ((w, center[0], self.cw), (h, center[1], self.ch)):
            lo = c - n_out / (2 * s)                    # canvas coordinate of the output's first edge
            o0 = min(n_out, max(0, math.ceil(-lo * s)))   # first output px inside the map
            o1 = max(o0, min(n_out, math.floor((n_canvas - lo) * s)))
            c0 = max(0, min(n_canvas - 1, round(lo + o0 / s)))
            c1 = max(c0 + 1, min(n_canvas, round(lo + o1 / s)))
            spans.append((o0, o1, c0, c1))
        (ox0, ox1, cx0, cx1), (oy0, oy1, cy0, cy1) = spans
        if ox1 <= ox0 or oy1 <= oy0:
            return None
        return s, (ox0, oy0, ox1, oy1), (cx0, cy0, cx1, cy1)

    def warp(self, canvas: np.ndarray, center, zoom: float) -> np.ndarray:
        """The view of ``canvas`` centred on ``center`` at ``zoom``, at the output size (black outside the
        map): a crop and one separable resize (3x cheaper than an affine warp at 1080p)."""
        w, h = self.size
        out = np.zeros((h, w, 3), np.uint8)
        span = self.span(center, zoom)
        if span is not None:
            s, (ox0, oy0, ox1, oy1), (cx0, cy0, cx1, cy1) = span
            cv2.resize(canvas[cy0:cy1, cx0:cx1], (ox1 - ox0, oy1 - oy0), dst=out[oy0:oy1, ox0:ox1],
                       interpolation=cv2.INTER_LINEAR if s > 0.5 else cv2.INTER_AREA)
        return out

    def _update_tiles(self, t, beat, visible, play, ripple) -> None:
        """Paste what each visible cell should show now; cells whose content did not change cost nothing."""
        flips = self._ripple_flips(t, beat, ripple)
        strips = self._strips
        k = strips.shape[1] if strips is not None else 0
        cells = visible.tolist()
        self._visible = set(cells)
        start = self._rotor % len(cells) if cells else 0
        budget = self.PASTES_PER_FRAME
        for n, cell in enumerate(cells[start:] + cells[:start]):
            if budget == 0:
                self._rotor = start + n  # next frame starts with the first cell left waiting
                return
            if cell in flips:
                frame = int(self._neighbour[cell])
                token = ("flip", frame)
                if self.shown.get(cell) != token:
                    self.paste(cell, np.asarray(self.built.atlas[frame]), token)
                    budget -= 1
            elif play >= 0.5 and k:
                # 4 fps per tile, each at its own sub-frame phase: tiles change a few per frame, not all at once
                j = int(t * 4 + self._phase[cell]) % k
                if self.shown.get(cell) != ("play", j):
                    self.paste(cell, strips[cell, j], ("play", j))
                    budget -= 1
            elif self.shown.get(cell) is not None:
                self.paste(cell, None, None)
                budget -= 1

    def ripple(self, t: float) -> None:
        """A ripple from a cell picked by the time (an onset in the music: repeatable in a render)."""
        rng = np.random.default_rng((self.rng_seed, int(t * 1000)))
        self.ripples.append((t, int(rng.integers(self.n_cells))))

    def _ripple_flips(self, t: float, beat: float, every: float) -> set[int]:
        if every >= 1:
            n = int(beat // every)
            if n != self.last_ripple_beat:
                self.last_ripple_beat = n
                if n > 0:
                    rng = np.random.default_rng((self.rng_seed, n))
                    self.ripples.append((t, int(rng.integers(self.n_cells))))
        self.ripples = [(t0, c) for t0, c in self.ripples if t - t0 < 3.0]
        flips: set[int] = set()
        speed = self.tile * 6.0                            # wave front in canvas px per second
        for t0, origin in self.ripples:
            d = np.linalg.norm(self.centers - self.centers[origin], axis=1)
            front = (t - t0) * speed
            flips.update(np.flatnonzero((d <= front) & (d > front - self.tile * 3)).tolist())
        return flips

    def morph_frame(self, visible, zoom: float, morph: float) -> np.ndarray:
        """Tiles as squares between their cells and their t-SNE positions, drawn over the dimmed map."""
        out = cv2.convertScaleAbs(self.warp(self.canvas, self.view, zoom), alpha=1 - min(1.0, morph) * 0.85)
        w, h = self.size
        s = h * zoom / self.ch
        side = max(2, int(self.tile * s * 0.8))
        cells = np.arange(self.n_cells) if morph > 0.05 else visible
        pos = (1 - morph) * self.centers[cells] + morph * self.tsne_px[cells]
        xy = ((pos - self.view) * s + [w / 2, h / 2] - side / 2).astype(int)
        self._draw_tiles(out, cells, xy, side)
        return out

    def _draw_tiles(self, out: np.ndarray, cells: np.ndarray, xy: np.ndarray, side: int) -> None:
        """Square thumbnails of ``cells``' frames with their top-left corners at ``xy`` (clipped to ``out``)."""
        h, w = out.shape[:2]
        keep = (xy[:, 0] > -side) & (xy[:, 0] < w) & (xy[:, 1] > -side) & (xy[:, 1] < h)
        for cell, (x, y) in zip(cells[keep].tolist(), xy[keep].tolist()):
            thumb = self._thumb(cell, side)
            x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + side), min(h, y + side)
            out[y0:y1, x0:x1] = thumb[y0 - y:y1 - y, x0 - x:x1 - x]

    def _thumb(self, cell: int, side: int) -> np.ndarray:
        key = (cell, side)
        if key not in self._thumbs:
            if len(self._thumbs) > 4096:
                self._thumbs.clear()
            self._thumbs[key] = cv2.resize(np.asarray(self.built.atlas[self.built.grid[cell]]), (side, side),
                                           interpolation=cv2.INTER_AREA)
        return self._thumbs[key]
