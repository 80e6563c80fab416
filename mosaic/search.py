"""Image search by feature distance, with a cut-off ("no match" beats a wrong match), and arithmetic.

Distances are cosine distances (1 - cosine similarity) between L2-normalised backbone features, so a
cut-off means the same thing for every library: 0 is identical, about 0.5 is unrelated.
"""
from __future__ import annotations

import logging

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mosaic.pipeline import Built, load_built
from vj.core.media import MediaError, media_frames
from vj.core.onnx import FeatureModel
from vj.core.runs import MosaicRun

log = logging.getLogger(__name__)


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


def contact_sheet(items: list[tuple[np.ndarray, str]], thumb: int = 160) -> np.ndarray:
    """Thumbnails side by side, each with its label (one or two lines) in light text on a dark band."""
    import cv2
    from PIL import Image, ImageDraw, ImageFont

    font = _font(15)
    band = 46
    sheet = Image.new("RGB", (len(items) * (thumb + 8) + 8, thumb + band + 16), (16, 16, 16))
    draw = ImageDraw.Draw(sheet)
    for i, (img, label) in enumerate(items):
        x = 8 + i * (thumb + 8)
        small = cv2.resize(np.ascontiguousarray(img), (thumb, thumb), interpolation=cv2.INTER_AREA)
        sheet.paste(Image.fromarray(small), (x, 8))
        draw.rectangle((x, thumb + 8, x + thumb - 1, thumb + 8 + band), fill=(0, 0, 0))
        for j, line in enumerate(label.splitlines()[:2]):
            draw.text((x + 5, thumb + 12 + 19 * j), _fit(draw, line, font, thumb - 10), font=font,
                      fill=(240, 240, 240))
    return np.asarray(sheet)


def _font(size: int):
    """A real TrueType font (DejaVu ships with matplotlib): PIL's bitmap default drops dots and spaces."""
    from PIL import ImageFont

    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def _fit(draw, text: str, font, width: int) -> str:
    """``text`` cut with an ellipsis in the middle until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    keep = len(text)
    while keep > 4:
        keep -= 1
        cut = text[:keep // 2] + "…" + text[len(text) - keep // 2:]
        if draw.textlength(cut, font=font) <= width:
            return cut
    return text[:4]


@dataclass
class Result:
    """A query's inputs (labelled a, +b, -c) and matches, for the terminal and the contact sheet."""
    inputs: list[tuple[np.ndarray, str]]
    matches: list[Match]
    built: Built
    max_distance: float | None = None

    def table(self) -> str:
        if not self.matches:
            return f"no match within distance {self.max_distance:g}" if self.max_distance is not None \
                else "no match"
        rows = [f"{'rank':>4}  {'distance':>8}  {'time':>8}  source"]
        rows += [f"{i + 1:>4}  {m.distance:8.4f}  {m.time:7.2f}s  {m.source}" for i, m in enumerate(self.matches)]
        return "\n".join(rows)

    def sheet(self, thumb: int = 160) -> np.ndarray:
        items = list(self.inputs)
        items += [(np.asarray(self.built.atlas[m.frame]), f"{Path(m.source).name}\n{m.time:.1f} s   d {m.distance:.3f}")
                  for m in self.matches]
        if not self.matches:
            items.append((np.zeros((thumb, thumb, 3), np.uint8), "no match"))
        return contact_sheet(items, thumb)


class Searcher:
    """A built mosaic and its backbone, loaded once: every query after the first costs one forward pass."""

    def __init__(self, built: Built, run=None):
        """``run``: the mosaic's run; its saved feature model gives queries the very features of the build
        (and loads in a fraction of a second). Without one (a mosaic from before), or with one that cannot be
        read (the next build replaces it), the backbone is built."""
        self.built = built
        model = getattr(run, "feature_model", None)
        self.extractor = None
        if model is not None and model.exists():
            try:
                self.extractor = FeatureModel(model)
                self.size = self.extractor.size
            except Exception as exc:  # noqa: BLE001 - any load error: the backbone still answers the query
                log.warning("mosaic: %s cannot be read (%s); querying with the backbone (rebuild to restore it)",
                            model, str(exc).splitlines()[0][:120])
        if self.extractor is None:
            from vj.core.features import FeatureExtractor

            self.extractor = FeatureExtractor(built.settings.get("backbone", "efficientnet_lite0"))
            self.size = self.extractor.spec.size
        self._unit = unit(built.features)

    @classmethod
    def open(cls, run) -> "Searcher":
        run = MosaicRun.at(run)
        return cls(load_built(run), run)

    def image(self, path: Path) -> np.ndarray:
        try:
            return next(media_frames(path, size=self.size))  # a still, or a video's first frame
        except MediaError as exc:
            raise MediaError(f"{path}: {exc}") from None

    def query(self, image: Path, plus: list[Path] = (), minus: list[Path] = (), k: int = 8,
              max_distance: float | None = None) -> Result:
        pos = [self.image(p) for p in [image, *plus]]
        neg = [self.image(p) for p in minus]
        feats = self.extractor(np.stack(pos + neg))
        q = combine(list(feats[:len(pos)]), list(feats[len(pos):]))
        matches = nearest(self.built, q, k, max_distance)
        labels = ["a"] + [f"+{chr(98 + i)}" for i in range(len(plus))]
        labels += [f"-{chr(98 + len(plus) + i)}" for i in range(len(minus))]
        if not plus and not minus:
            labels = ["query"]
        names = [Path(p).name for p in [image, *plus, *minus]]
        inputs = [(img, f"{lab}\n{name}") for img, lab, name in zip(pos + neg, labels, names)]
        return Result(inputs, matches, self.built, max_distance)
