"""``build``: videos/images -> atlas + features -> coordinates -> grid -> play strips, each stage cached.

    runs/mosaic/<name>/
      cache/<key>.tiles.npy  .feat.npy  .json   one video's frames and features (key: file + settings)
      atlas.npy       (N, T, T, 3) uint8 tiles          index.csv   i, source file, timestamp (s)
      features.npy    (N, D) float32                    coords.npy  (N, 2) float32 t-SNE
      grid.npy        (rows*cols,) frame per cell       grid.csv    row, col, source, timestamp (s)
      strips.npy      (cells, K, S, S, 3) uint8 clips for playing tiles
      settings.json   the settings and input keys that made each stage

A stage re-runs only when its inputs change: adding five videos decodes and embeds those five; a new
perplexity re-runs t-SNE and the grid, not the features. ``build`` rebuilds a stage whose file fails to
load (overwriting it); readers (``load_built``: posters, queries, the live layer) never delete or change
what they cannot load, they say what is wrong. File names come from ``vj.core.runs.MosaicRun``; source
paths that are not valid UTF-8 round-trip through the CSV files unchanged.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from mosaic.embed import EMBED_VERSION, METHODS, embed
from mosaic.grid import assign
from vj.core.config import build as build_settings
from vj.core.media import (IMAGE_EXTS, VIDEO_EXTS, MediaError, drop_near_duplicates, find_media, library_size,
                           media_frames, note_unreadable, skip_report)
from vj.core.onnx import FeatureModel, native_bf16
from vj.core.progress import wrap
from vj.core.runs import MosaicRun, atomic_write_bytes, atomic_write_text, clean_temp, hold

log = logging.getLogger(__name__)


class MosaicError(ValueError):
    """A clear, one-line problem with a mosaic (missing, corrupt, impossible settings)."""


@dataclass(frozen=True)
class BuildSettings:
    fps: float = 1.0                 # frames sampled per second of video (the seed's 1); 0: fitted (AUTO_FPS)
    tile: int = 128                  # atlas tile side in pixels (the seed's triangles are 128 px)
    backbone: str = "efficientnet_lite0"  # ImageNet features: efficientnet_lite0 (offline), inception_v3, resnet50
    perplexity: float = 10.0         # the seed's
    embed: str = "tsne"              # tsne (FFT-accelerated, float32), sklearn (the seed's) or pca
    grid: tuple[int, int] = (60, 30) # columns x rows; (0, 0): the seed's 60x30, or as much of it as the frames fill
    layout: str = "triangle"         # triangle (the seed's), square or hex
    assign: str = "optimal"          # optimal (one-to-one) or nearest (the seed's, repeats)
    dedupe: float = 0.0              # drop near-identical consecutive frames (mean |diff| 0-255)
    seed: int = 0                    # seeds t-SNE
    device: str = "cpu"              # cpu (OpenVINO, else ONNX Runtime) or a torch device for the features
    precision: str = "auto"          # the CPU model's: auto (bf16 where the CPU computes it natively, else
                                     # fp32), fp32, bf16 (2x fp32, maps within noise of it), or int8 (about
                                     # 1.5x, calibrated on the library's frames; maps measurably worse: RESULTS.md)
    strip_frames: int = 8            # frames per playing tile
    strip_fps: float = 4.0           # their rate
    strip_tile: int = 64             # their side in pixels

    def validate(self) -> "BuildSettings":

        cols, rows = self.grid
        checks = [(0 <= self.fps <= 60, f"fps {self.fps:g} must be 0 (fitted) to 60"),
                  (16 <= self.tile <= 512, f"tile {self.tile} must be 16-512 px"),
                  ((cols, rows) == (0, 0) or 1 <= cols <= 400 and 1 <= rows <= 400,
                   f"grid {cols}x{rows}: at most 400x400"),
                  (self.layout in ("triangle", "square", "hex"), f"layout {self.layout!r} is not triangle, square or hex"),
                  (self.assign in ("optimal", "nearest"), f"assign {self.assign!r} is not optimal or nearest"),
                  (self.precision in PRECISIONS, f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}"),
                  (self.embed in METHODS, f"embed {self.embed!r} is not one of {', '.join(METHODS)}"),
                  (1 <= self.perplexity <= 500, f"perplexity {self.perplexity:g} must be 1-500"),
                  (1 <= self.strip_frames <= 64 and 8 <= self.strip_tile <= 256, "strip_frames 1-64, strip_tile 8-256")]
        for ok, why in checks:
            if not ok:
                raise MosaicError(why)
        return self

    @classmethod
    def make(cls, values: dict, where: str = "mosaic settings") -> "BuildSettings":
        """Settings from a dict (flags, a preset), through the one settings loader."""
        return build_settings(cls, values, where).validate()


@dataclass
class Built:
    atlas: np.ndarray
    index: list[tuple[str, float]]
    features: np.ndarray
    coords: np.ndarray
    grid: np.ndarray
    strips: np.ndarray | None
    settings: dict = field(default_factory=dict)

    @property
    def cols(self) -> int:
        return int(self.settings["grid"][0])

    @property
    def rows(self) -> int:
        return int(self.settings["grid"][1])

    @property
    def layout(self) -> str:
        return self.settings["layout"]


def _key(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load(path: Path, mmap: bool = False):
    """np.load that treats a damaged file as missing (None, with a warning); it never deletes: ``build``
    overwrites a stage it has to redo, and readers only report what is wrong."""
    if not path.exists():
        return None
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        if not mmap:
            arr = np.asarray(arr)
        return arr
    except (ValueError, OSError, EOFError) as exc:
        log.warning("%s cannot be read (%s)", path.name, exc.__class__.__name__)
        return None


def _save(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npy")
    try:
        np.save(tmp, arr)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_csv(path: Path, header: list[str], rows) -> None:
    """A CSV written atomically; source paths that are not valid UTF-8 are kept byte for byte."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode("utf-8", "surrogateescape"))


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        return list(csv.DictReader(f))


def _frames_of(path: Path, size: int, fps: float, dedupe: float):
    """(timestamp, frame at the backbone's size) for a video, or the one frame of an image."""
    for i, frame in drop_near_duplicates(media_frames(path, fps, size, "center"), dedupe):
        yield i / fps, frame


CALIBRATION_FRAMES = 64  # frames of the library an int8 feature model is calibrated on
PRECISIONS = ("auto", "fp32", "bf16", "int8")


def float_precision() -> str:
    """What ``auto`` means here: bf16 where the CPU computes bfloat16 natively (and OpenVINO runs it), else fp32."""
    return "bf16" if native_bf16() else "fp32"


def feature_model(files: list[Path], run: MosaicRun, s: BuildSettings):
    """The feature network this mosaic describes its frames with: the one saved in the run (so every later
    build and query gets the very same features), else a new one saved there: on the CPU an ONNX model, int8
    when ``precision`` says so (statically quantised, calibrated on frames spread over the library), on a
    GPU the torch network. Returns (extractor, its identity for the per-file cache keys)."""
    from vj.core.features import FeatureExtractor, get_backbone

    path = run.feature_model
    if s.device == "cpu" and path.exists():
        try:
            model = FeatureModel(path)
            # auto keeps a float model of either kind: its features stay valid, nothing is recomputed
            wanted = ("fp32", "bf16") if s.precision == "auto" else (s.precision,)
            if model.backbone == s.backbone and model.precision in wanted:
                return model, hashlib.sha1(path.read_bytes()).hexdigest()[:16]
        except Exception as exc:  # noqa: BLE001 - unreadable: a new one replaces it (its features too)
            log.warning("mosaic: %s cannot be read (%s); making a new feature model", path, exc)
    extractor = FeatureExtractor(s.backbone, s.device)
    if extractor.runtime != "onnx":
        return extractor, f"{s.backbone}-torch"
    calibration = None
    if s.precision == "int8":
        spec = get_backbone(s.backbone)
        per_file = max(1, CALIBRATION_FRAMES // len(files))
        calibration = []
        for f in files[:CALIBRATION_FRAMES]:
            try:
                calibration += [x for _, x in zip(range(per_file), (fr for _, fr in _frames_of(f, spec.size, 0.5, 0)))]
            except MediaError:
                continue
        calibration = np.stack(calibration) if calibration else None
        log.info("mosaic: calibrating the int8 feature model on %d frames of the library",
                 0 if calibration is None else len(calibration))
    extractor.save_onnx(path, calibration, float_precision() if s.precision == "auto" else s.precision)
    model = FeatureModel(path)
    return model, hashlib.sha1(path.read_bytes()).hexdigest()[:16]


def extract(files: list[Path], run: MosaicRun, s: BuildSettings,
            progress: bool | None = None) -> tuple[np.ndarray, list, np.ndarray, str]:
    """Per-file tiles and features (cached per file), combined into atlas, index and features."""
    from vj.core.features import get_backbone

    spec = get_backbone(s.backbone)
    cache = run.cache
    cache.mkdir(parents=True, exist_ok=True)
    extractor, model_id = feature_model(files, run, s)
    log.info("mosaic: features by %s on %s", s.backbone, getattr(extractor, "runtime", "torch"))
    keys, used, skipped = [], [], []
    for path in wrap(files, len(files), "frames + features", "file", progress):
        st = path.stat()
        key = _key(str(path.resolve()), st.st_size, int(st.st_mtime), s.fps, s.tile, s.dedupe, s.backbone, model_id)
        meta_path = cache / f"{key}.json"
        if meta_path.exists() and _load(cache / f"{key}.tiles.npy", True) is not None \
                and _load(cache / f"{key}.feat.npy", True) is not None:
            keys.append(key)
            used.append(path)
            continue
        times, tiles, feats = [], [], []
        try:
            stream = _frames_of(path, spec.size, s.fps, s.dedupe)
            pending_t = []

            def frames_only():
                for t, f in stream:
                    pending_t.append(t)
                    yield f
            for batch, f in extractor.stream(frames_only()):
                tiles += [cv2.resize(x, (s.tile, s.tile), interpolation=cv2.INTER_AREA) for x in batch]
                feats.append(f)
            times = pending_t[:len(tiles)]
        except MediaError as exc:
            note_unreadable(skipped, path, str(exc), _shown(path))
            continue
        if not tiles:
            skipped.append((path, "no frames"))
            continue
        _save(cache / f"{key}.tiles.npy", np.stack(tiles))
        _save(cache / f"{key}.feat.npy", np.concatenate(feats).astype(np.float32))
        atomic_write_text(meta_path, json.dumps({"source": str(path), "times": times}))
        keys.append(key)
        used.append(path)
    if not keys:
        raise MosaicError(f"no usable video or image ({skip_report([], skipped)})")
    log.info("mosaic: %s", skip_report(used, skipped))
    frames_key = _key(keys)
    settings = _read_settings(run)
    atlas, feats = _load(run.array("atlas"), True), _load(run.array("features"))
    if settings.get("frames_key") == frames_key and atlas is not None and feats is not None \
            and run.index.exists():
        return atlas, _read_index(run), feats, frames_key
    index, atlases, featlist = [], [], []
    for key in keys:
        meta = json.loads((cache / f"{key}.json").read_text())
        index += [(meta["source"], t) for t in meta["times"]]
        atlases.append(np.load(cache / f"{key}.tiles.npy"))
        featlist.append(np.load(cache / f"{key}.feat.npy"))
    atlas, feats = np.concatenate(atlases), np.concatenate(featlist)
    _save(run.array("atlas"), atlas)
    _save(run.array("features"), feats)
    _write_csv(run.index, ["i", "source", "time_s"], ((i, src, f"{t:.3f}") for i, (src, t) in enumerate(index)))
    _write_settings(run, {**settings, "frames_key": frames_key})
    return atlas, index, feats, frames_key


def _shown(path: Path) -> str:
    """A path for a message, whatever bytes its name holds."""
    return str(path).encode("utf-8", "backslashreplace").decode()


def _read_index(run: MosaicRun) -> list[tuple[str, float]]:
    return [(r["source"], float(r["time_s"])) for r in _read_csv(run.index)]


def _read_settings(run: MosaicRun) -> dict:
    try:
        return json.loads(run.settings.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _write_settings(run: MosaicRun, settings: dict) -> None:
    atomic_write_text(run.settings, json.dumps(settings, indent=1))


SEED_GRID = (60, 30)       # the seed's grid: 1,800 cells
AUTO_FPS = (1.0, 6.0)      # a fitted frame rate: the seed's 1 fps, up to 6 for a short library of loops


def fitted_fps(seconds: float, cells: int = SEED_GRID[0] * SEED_GRID[1]) -> float:
    """The frame rate that samples about ``cells`` frames from ``seconds`` of video: the seed's 1 fps for a
    library of half an hour or more, up to 6 fps for a few minutes of loops (closer frames mostly repeat)."""
    lo, hi = AUTO_FPS
    return lo if seconds <= 0 else round(min(hi, max(lo, cells / seconds)), 2)


def fitted_grid(frames: int, want: tuple[int, int] = SEED_GRID) -> tuple[int, int]:
    """``want``, or, with fewer frames than its cells, the largest grid of its shape that they fill (each
    cell a different frame): 500 frames make 30x15 of the seed's 60x30."""
    cols, rows = want
    if frames >= cols * rows:
        return want
    r = max(1, int(np.sqrt(frames * rows / cols)))
    return max(1, min(frames // r, round(r * cols / rows))), r


def build(inputs: list[str | Path], run: Path | MosaicRun, s: BuildSettings = BuildSettings(),
          progress: bool | None = None) -> Built:
    """Build (or bring up to date) the mosaic of ``inputs`` in ``run``. ``progress``: None shows bars on a
    terminal and lines elsewhere; False lines only."""

    run = MosaicRun.at(run)
    s = s.validate()
    files = find_media(inputs, VIDEO_EXTS | IMAGE_EXTS, skip=(run.root,))
    if not files:
        raise MosaicError(f"{', '.join(map(str, inputs))}: no video or image files")
    if s.fps == 0:  # fitted to the library
        seconds, stills = library_size(files, run.name)
        s = replace(s, fps=fitted_fps(seconds, max(0, SEED_GRID[0] * SEED_GRID[1] - stills)))
        if seconds > 0:
            log.info("mosaic: %s s of video: %g frames a second (--fps to choose)", f"{seconds:,.0f}", s.fps)
    with hold(run.path, "vj mosaic build"):  # a second build of the same mosaic is refused, not interleaved
        return _build(files, run, s, progress)


def _build(files: list[Path], run: MosaicRun, s: BuildSettings, progress: bool | None) -> Built:
    clean_temp(run.path)
    atlas, index, feats, frames_key = extract(files, run, s, progress)
    settings = _read_settings(run)

    embed_key = _key(frames_key, s.embed, s.perplexity, s.seed, EMBED_VERSION)
    coords = _load(run.array("coords"))
    if settings.get("embed_key") != embed_key or coords is None or len(coords) != len(feats):
        log.info("mosaic: embedding %d frames (%s, perplexity %g)", len(feats), s.embed, s.perplexity)
        coords = embed(feats, s.embed, s.perplexity, seed=s.seed, progress=progress is not False)
        _save(run.array("coords"), coords)
        settings["embed_key"] = embed_key
        _write_settings(run, settings)

    if s.grid == (0, 0):  # the seed's grid, or as much of it as the frames fill one to one
        s = replace(s, grid=fitted_grid(len(feats)) if s.assign == "optimal" else SEED_GRID)
        if s.grid != SEED_GRID:
            log.info("mosaic: %d frames: grid %dx%d (60x30 needs 1,800 different frames; more with --fps, or "
                     "--grid)", len(feats), *s.grid)
    grid_key = _key(embed_key, s.grid, s.layout, s.assign)
    grid = _load(run.array("grid"))
    cols, rows = s.grid
    if settings.get("grid_key") != grid_key or grid is None or len(grid) != cols * rows:
        log.info("mosaic: placing frames on a %dx%d %s grid (%s)", cols, rows, s.layout, s.assign)
        grid = assign(coords, cols, rows, s.assign, s.layout)
        _save(run.array("grid"), grid)
        _write_csv(run.grid_csv, ["row", "col", "source", "time_s"],
                   ((cell // cols, cell % cols, index[frame][0], f"{index[frame][1]:.3f}")
                    for cell, frame in enumerate(grid)))
        settings["grid_key"] = grid_key
        _write_settings(run, settings)

    strip_key = _key(grid_key, s.strip_frames, s.strip_fps, s.strip_tile)
    strips = _load(run.array("strips"), True)
    if settings.get("strip_key") != strip_key or strips is None or len(strips) != len(grid):
        strips = make_strips(index, grid, s, progress)
        _save(run.array("strips"), strips)
        settings["strip_key"] = strip_key
    settings.update({k: v for k, v in asdict(s).items()})
    _write_settings(run, settings)
    return Built(np.asarray(atlas), index, feats, coords, grid, np.asarray(strips), settings)


def make_strips(index: list, grid: np.ndarray, s: BuildSettings, progress: bool | None = None) -> np.ndarray:
    """For each cell, ``strip_frames`` small frames of its video from its timestamp (to play tiles).

    Each source video is decoded once at ``strip_fps``; windows are cut from it. Images hold still.
    """
    k, t = s.strip_frames, s.strip_tile
    strips = np.zeros((len(grid), k, t, t, 3), np.uint8)
    by_source: dict[str, list[int]] = {}
    for cell, frame in enumerate(grid):
        by_source.setdefault(index[frame][0], []).append(cell)
    for src, cells in wrap(by_source.items(), len(by_source), "tile clips", "file", progress):
        path = Path(src)
        try:
            frames = list(media_frames(path, s.strip_fps, t, "center"))
        except MediaError:
            continue
        for cell in cells:
            start = int(index[grid[cell]][1] * s.strip_fps)
            for j in range(k):
                strips[cell, j] = frames[min(len(frames) - 1, start + j)] if frames else 0
    return strips


def load_built(run: str | Path | MosaicRun) -> Built:
    """A built mosaic, or MosaicError naming what is missing or damaged (nothing is changed on disk)."""
    run = MosaicRun.at(run)
    if not run.path.exists():
        raise MosaicError(f"mosaic {run.name!r} does not exist in {run.path.parent} (build it: vj mosaic build ...)")
    settings = _read_settings(run)
    arrays = {}
    for name, mmap in (("atlas", True), ("features", False), ("coords", False), ("grid", False), ("strips", True)):
        arrays[name] = _load(run.array(name), mmap)
        if arrays[name] is None and name != "strips":
            raise MosaicError(f"mosaic {run.name!r}: {run.array(name).name} is missing or damaged "
                              f"(re-run vj mosaic build)")
    if not settings.get("grid") or not run.index.exists():
        raise MosaicError(f"mosaic {run.name!r}: {run.settings.name} or {run.index.name} is missing "
                          f"(re-run vj mosaic build)")
    grid = arrays["grid"]
    if grid.max() >= len(arrays["atlas"]) or len(arrays["features"]) != len(arrays["atlas"]):
        raise MosaicError(f"mosaic {run.name!r}: files do not belong together (re-run vj mosaic build)")
    return Built(arrays["atlas"], _read_index(run), arrays["features"], arrays["coords"], grid, arrays["strips"],
                 settings)
