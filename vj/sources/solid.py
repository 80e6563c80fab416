"""A flat colour: a background, or a colour wash mixed over the show."""
from __future__ import annotations

import numpy as np

from vj.params import Param
from vj.sources.base import Source


class SolidSource(Source):
    kind = "solid"
    params = (Param("r", 0.0, 0, 1, help="red"), Param("g", 0.0, 0, 1, help="green"),
              Param("b", 0.0, 0, 1, help="blue"))

    def frame(self, ctx, p):
        color = np.array([p["r"], p["g"], p["b"]]) * 255
        return np.broadcast_to(color.astype(np.uint8), (self.size[1], self.size[0], 3)).copy()
