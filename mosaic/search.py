"""Image search by feature distance, with a cut-off ("no match" beats a wrong match), and arithmetic.

Distances are cosine distances (1 - cosine similarity) between L2-normalised backbone features, so a
cut-off means the same thing for every library: 0 is identical, about 0.5 is unrelated.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mosaic.pipeline import Built


@dataclass
class Match:
    frame: int          # index into the atlas
    source: str
    time: float
    distance: float


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (cosine geometry: features compare by angle)."""
    x = np.asarray(x, np.float32)
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)


def nearest(built: Built, query: np.ndarray, k: int = 8, max_distance: float | None = None) -> list[Match]:
    """The ``k`` frames nearest to the feature vector ``query`` (D,), closest first, within the cut-off."""
    d = 1.0 - unit(built.features) @ unit(query)
    order = np.argsort(d, kind="stable")[:k]
    return [Match(int(i), built.index[i][0], built.index[i][1], float(d[i])) for i in order
            if max_distance is None or d[i] <= max_distance]


def combine(plus: list[np.ndarray], minus: list[np.ndarray]) -> np.ndarray:
    """Feature arithmetic on unit vectors: sum(plus) - sum(minus), e.g. A + B - C."""
    v = sum(unit(p) for p in plus)
    for m in minus:
        v = v - unit(m)
    return v


def contact_sheet(query_images: list[np.ndarray], built: Built, matches: list[Match], thumb: int = 160) -> np.ndarray:
    """Query image(s) on the left, matches to the right, each labelled with source, time and distance."""
    from pathlib import Path

    import cv2
    from PIL import Image, ImageDraw

    n = len(query_images) + max(1, len(matches))
    sheet = Image.new("RGB", (n * (thumb + 8) + 8, thumb + 44), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    items = [(img, "query") for img in query_images]
    items += [(np.asarray(built.atlas[m.frame]), f"{Path(m.source).name[:18]}\n{m.time:.1f}s d={m.distance:.3f}")
              for m in matches]
    if not matches:
        items.append((np.zeros((thumb, thumb, 3), np.uint8), "no match"))
    for i, (img, label) in enumerate(items):
        x = 8 + i * (thumb + 8)
        sheet.paste(Image.fromarray(cv2.resize(img, (thumb, thumb), interpolation=cv2.INTER_AREA)), (x, 8))
        draw.text((x, thumb + 12), label, fill=(230, 230, 230))
    return np.asarray(sheet)
