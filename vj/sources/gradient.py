"""A slowly turning two-colour gradient: a background that is never flat."""
from __future__ import annotations

import numpy as np

from vj.params import Param
from vj.sources.base import Source


class GradientSource(Source):
    kind = "gradient"
    params = (Param("speed", 0.1, 0, 2, help="turns per 10 s"),
              Param("hue", 0.6, 0, 1, help="hue of the first colour; the second is opposite"))

    def __init__(self, size, exact=False):
        super().__init__(size, exact)
        w, h = size
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        self._x, self._y = (x - w / 2) / h, (y - h / 2) / h

    def frame(self, ctx, p):
        a = ctx.t * p["speed"] * 0.628
        v = 0.5 + 0.5 * np.tanh((self._x * np.cos(a) + self._y * np.sin(a)) * 3)
        hue = p["hue"] * 2 * np.pi
        c1 = 0.5 + 0.5 * np.cos(hue + np.array([0, 2.1, 4.2]))
        c2 = 0.5 + 0.5 * np.cos(hue + np.pi + np.array([0, 2.1, 4.2]))
        rgb = v[..., None] * c1 * 0.6 + (1 - v[..., None]) * c2 * 0.6
        return (rgb * 255).astype(np.uint8)
