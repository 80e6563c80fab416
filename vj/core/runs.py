"""The one run-directory layout: the pipelines write through it, the engine reads genres through it.

    runs/gan/<genre>/     config.toml  ckpt.pt  log.csv  loss.png  generator.pt  samples/  clips/  frames/
    runs/mosaic/<name>/   settings.json  atlas.npy  index.csv  features.npy  coords.npy  grid.npy  grid.csv
                          strips.npy  cache/  poster.png  tsne.png  query.png

A process that writes a run holds it (``hold``: ``.lock`` in its folder), so a second trainer or build of
the same run is refused instead of interleaving its checkpoints and logs with the first's.

Only this module spells those names. Every file is written atomically (a temp file in the same folder,
fsync, rename): a reader sees the old file or the new one, never half of one, and a kill at any moment
leaves at most a temp file, which ``clean_temp`` removes at the next start. A full disk keeps the old
file and says how much space the new one needed.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator

try:
    import fcntl
except ImportError:  # Windows: runs are not locked there
    fcntl = None

DEFAULT_RUNS = Path(os.environ.get("VJ_RUNS", "runs"))
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TEMP = ".tmp"  # in every temp file's name: .<name>.tmp<pid>


def check_name(name: str, what: str = "name") -> str:
    if not _NAME.match(name):
        raise ValueError(f"{what} {name!r} must be letters, digits, '_', '-' or '.', at most 64 characters")
    return name


def name_from(text: str) -> str:
    """A run name made from a folder's name: accents dropped, anything else that may not be in a name made a
    '-' (``my loops`` -> ``my-loops``, ``Clips é #1`` -> ``Clips-e-1``); '' when nothing of it is left."""
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_).lstrip("-_.")[:64].rstrip("-")


class DiskFull(OSError):
    """A write ran out of space; the file it would have replaced is untouched."""


class RunBusy(RuntimeError):
    """Another live process is writing the run."""


@contextmanager
def hold(folder: Path, what: str) -> Iterator[None]:
    """Hold the run in ``folder`` (created if need be) while the block runs: an exclusive lock on its
    ``.lock``, which the kernel releases when the process ends however it ends, so a crash or a kill never
    leaves a stale lock. A second holder is refused with ``RunBusy``, naming the first (its pid and
    ``what``, e.g. "vj gan train"). A folder made here that the block left empty is removed again (a run
    that failed before writing anything leaves nothing). Without ``fcntl`` (Windows) the block runs
    unlocked."""
    folder = Path(folder)
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    lock = folder / ".lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    held = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RunBusy(f"{folder} is in use by {holder}: wait for it or stop it (Ctrl-C there saves its "
                          f"work), or pick another name or --runs") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({what})\n".encode(), 0)
        yield
    finally:
        if held and made and [p.name for p in folder.iterdir()] == [lock.name]:
            lock.unlink()
            folder.rmdir()
        os.close(fd)  # the lock goes with the descriptor


def atomic_write_bytes(path: Path, data: bytes, keep: int = 0) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers see old or new, never half.
    ``keep``: the new file is the old one's first ``keep`` bytes, then ``data`` (copied by the kernel: a
    change near the end of a long log costs a copy, not a parse)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{_TEMP}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            if keep:
                with open(path, "rb") as old:
                    left = keep
                    while left:
                        sent = os.sendfile(f.fileno(), old.fileno(), keep - left, left)
                        if not sent:
                            raise OSError(errno.EIO, f"{path} is shorter than {keep} bytes")
                        left -= sent
                f.seek(keep)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # (not there, or its folder is not one: the error below says so)
            tmp.unlink()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(path.parent).free
            raise DiskFull(exc.errno, f"disk full writing {path}: it needs {_mb(keep + len(data))}, {_mb(free)} "
                                      f"free (the previous {path.name} is kept)") from None
        if exc.filename is not None and str(exc.filename) == str(tmp) and exc.errno:
            # the error names the file being written, not its hidden temp
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def clean_temp(folder: Path) -> list[Path]:
    """Remove temp files a killed writer left in ``folder`` and its subfolders (not ``frames/``, whose cache
    repairs itself); returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.rglob(f".*{_TEMP}*"):
        if p.is_file() and "frames" not in p.relative_to(folder).parts[:-1]:
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


_SAMPLE = re.compile(r"^epoch_(\d+)(?:-(\d+))?\.png$")


def sample_key(name: str) -> tuple[int, int, int]:
    """A sample file's place in time: ``epoch_00003-01.png`` (taken during epoch 3) comes before
    ``epoch_00003.png`` (its end), both before epoch 4's. A name of another shape sorts first."""
    m = _SAMPLE.match(name)
    if not m:
        return (-1, 0, 0)
    return (int(m[1]), 0, int(m[2])) if m[2] else (int(m[1]), 1, 0)


@dataclass(frozen=True)
class _Run:
    """``runs/<KIND>/<name>/``: one run folder; the subclasses name what is in it."""
    path: Path
    KIND: ClassVar[str] = ""
    WHAT: ClassVar[str] = "name"  # what the name is called in an error

    @classmethod
    def of(cls, runs: str | Path, name: str):
        return cls(Path(runs) / cls.KIND / check_name(name, cls.WHAT))

    @classmethod
    def at(cls, where: "str | Path | _Run"):
        """``where`` as this kind of run (a run of it passes through)."""
        return where if isinstance(where, cls) else cls(Path(where))

    name = property(lambda self: self.path.name)
    root = property(lambda self: self.path.parent.parent)        # the runs folder: never read back as media


@dataclass(frozen=True)
class GanRun(_Run):
    """``runs/gan/<genre>/``: one genre's training run."""
    KIND: ClassVar[str] = "gan"
    WHAT: ClassVar[str] = "genre"

    genre = property(lambda self: self.path.name)
    config = property(lambda self: self.path / "config.toml")   # the truth of the run: resume reads it
    ckpt = property(lambda self: self.path / "ckpt.pt")         # weights, optimisers, counters, RNG
    log = property(lambda self: self.path / "log.csv")          # one row per epoch: losses, KID
    loss_plot = property(lambda self: self.path / "loss.png")
    exported = property(lambda self: self.path / "generator.pt")  # the generator alone (vj gan export)
    samples = property(lambda self: self.path / "samples")
    clips = property(lambda self: self.path / "clips")
    frames = property(lambda self: self.path / "frames")        # the memory-mapped training frames

    def sample_dir(self, latent: int | None = None) -> Path:
        """The grid samples, or one fixed latent's own track (``z00``...)."""
        return self.samples if latent is None else self.samples / f"z{latent:02d}"

    def sample_files(self, latent: int | None = None) -> list[Path]:
        """The sample PNGs in time order (by :func:`sample_key`: past epoch 99,999 names alone do not sort);
        a file named otherwise is not one."""
        keyed = [(sample_key(p.name), p) for p in self.sample_dir(latent).glob("epoch_*.png")]
        return [p for key, p in sorted(keyed) if key[0] >= 0]

    def clip(self, name: str) -> Path:
        return self.clips / f"{name}.mp4"

    def clip_files(self) -> list[Path]:
        return sorted(self.clips.glob("*.mp4"))

    def generator(self) -> Path | None:
        """The file a live layer loads: the checkpoint, else an exported generator; None when neither."""
        for p in (self.ckpt, self.exported):
            if p.exists():
                return p
        return None


@dataclass(frozen=True)
class MosaicRun(_Run):
    """``runs/mosaic/<name>/``: one mosaic's stages, each cached with the settings that made it."""
    KIND: ClassVar[str] = "mosaic"
    WHAT: ClassVar[str] = "mosaic name"

    settings = property(lambda self: self.path / "settings.json")
    index = property(lambda self: self.path / "index.csv")      # i, source file, timestamp
    grid_csv = property(lambda self: self.path / "grid.csv")    # row, col, source, timestamp
    cache = property(lambda self: self.path / "cache")          # per input file: tiles and features
    feature_model = property(lambda self: self.path / "features.onnx")  # the network that made the features
    poster = property(lambda self: self.path / "poster.png")
    plot = property(lambda self: self.path / "tsne.png")
    query = property(lambda self: self.path / "query.png")

    def array(self, stage: str) -> Path:
        """``atlas``, ``features``, ``coords``, ``grid`` or ``strips`` as ``.npy``."""
        if stage not in ("atlas", "features", "coords", "grid", "strips"):
            raise ValueError(f"no mosaic stage {stage!r}")
        return self.path / f"{stage}.npy"


def gan_dir(runs: str | Path, genre: str) -> Path:
    return GanRun.of(runs, genre).path


def mosaic_dir(runs: str | Path, name: str) -> Path:
    return MosaicRun.of(runs, name).path


def log_columns(path: Path, most: int | None = None, keys: tuple[str, ...] | None = None
                ) -> dict[str, list[float | None]]:
    """A run's ``log.csv`` as columns of numbers (``keys``, or all), None where a cell is empty or unreadable;
    rows not of an epoch, or torn (fewer cells than the header), are skipped. With ``most``, a longer log comes back as that many bin means of
    consecutive rows (None where a bin has no value): a chart shows no more, and an overnight run of short
    epochs has 10^5-10^6 rows. Empty when there is no log yet."""
    import csv

    import numpy as np

    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            rows = [r for r in reader if len(r) == len(header) and r[0].isdigit()]  # a row torn by a kill: out
    except (FileNotFoundError, csv.Error, UnicodeDecodeError):
        return {}

    def number(cell: str) -> float:
        try:
            return float(cell) if cell else np.nan
        except ValueError:
            return np.nan
    columns = {}
    for i, key in enumerate(header):
        if keys is None or key in keys:
            x = np.array([number(r[i]) for r in rows], np.float64)
            if most and len(x) > most:
                starts = np.arange(most) * len(x) // most
                seen = ~np.isnan(x)
                sums, counts = np.add.reduceat(np.where(seen, x, 0.0), starts), np.add.reduceat(seen, starts)
                x = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
            columns[key] = [None if np.isnan(v) else float(v) for v in x]
    return columns


def log_tail(path: Path, size: int) -> tuple[list[str], int, list[str]]:
    """A ``log.csv``'s header and its last whole lines within about ``size`` bytes: (header, the byte offset
    of the first of them, lines). An overnight log of short epochs has 10^5-10^6 rows; its readers want the
    recent ones."""
    with open(path, "rb") as f:
        header = f.readline().decode("utf-8", "replace").rstrip("\r\n").split(",")
        body = f.tell()
        start = max(body, f.seek(0, os.SEEK_END) - size)
        f.seek(start)
        data = f.read()
    if start > body:  # the window begins mid-line: its lines start after the first newline
        cut = data.find(b"\n") + 1 or len(data)
        start, data = start + cut, data[cut:]
    return header, start, data.decode("utf-8", "replace").splitlines()


def fill_log(path: Path, cells: dict[int, dict[str, str]]) -> None:
    """Set cells of a ``log.csv`` (its own header names the columns) in the rows of the given epochs; an
    epoch without a row gets one, in epoch order. The rows a measurement finishes for are recent, so only
    the log's tail is read and rewritten: the rest is copied as bytes (a KID finishes every few seconds on a
    GPU)."""
    path = Path(path)
    whole, first, size = path.stat().st_size, min(cells), 1 << 16
    while True:  # read back until the tail holds a row before the first epoch, or the whole log
        header, start, lines = log_tail(path, size)
        epochs = [int(c) if (c := line.split(",", 1)[0]).isdigit() else -1 for line in lines]
        if size >= whole or (epochs and -1 < epochs[0] < first):
            break
        size *= 4
    for epoch, values in sorted(cells.items()):
        at = next((i for i in range(len(lines) - 1, -1, -1) if epochs[i] == epoch), None)
        if at is None:  # after the last row of an earlier epoch
            at = next((i + 1 for i in range(len(lines) - 1, -1, -1) if -1 < epochs[i] < epoch), 0)
            lines.insert(at, ",".join([str(epoch)] + [""] * (len(header) - 1)))
            epochs.insert(at, epoch)
        row = lines[at].split(",")
        if len(row) != len(header):  # a torn row: the log's repair at the next start drops it
            continue
        for key, value in values.items():
            row[header.index(key)] = value
        lines[at] = ",".join(row)
    atomic_write_bytes(path, "".join(line + "\n" for line in lines).encode(), keep=start)


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


def image_kind(path: str | Path) -> str:
    """The format an image's name says (``PNG``...), or one line saying which names are written."""
    kind = IMAGE_FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise ValueError(f"{str(path)!r}: images are written as .png, .jpg, .webp or .tif")
    return kind


def image_out(text: str) -> Path:
    """An argparse ``type`` for an image to write: refused when its name says no format ``save_image`` writes."""
    import argparse

    try:
        image_kind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return Path(text)


def save_image(path: Path, image, fast: bool = False) -> None:
    """An (H, W, 3) uint8 image in the format its name says (PNG, JPEG, WebP, TIFF), written atomically (a
    kill never leaves a zero-byte file); another name is refused before anything is drawn into it. ``fast``:
    PNG at zlib level 1, for images written while something else runs (a 530 px sample grid in 22 ms instead
    of 73, 12% larger)."""
    import io

    from PIL import Image

    kind = image_kind(path)
    options = {"PNG": {"compress_level": 1 if fast else 6}, "JPEG": {"quality": 92}, "WEBP": {"quality": 92}}
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=kind, **options.get(kind, {}))
    atomic_write_bytes(Path(path), buf.getvalue())
