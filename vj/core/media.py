"""The one module that reads and writes video for every part of reframe-vj.

Decoding goes through the ffmpeg binary shipped by ``imageio-ffmpeg``: any container or codec ffmpeg
reads (mp4, mov, mkv, webm/VP9, 10-bit, portrait with rotation metadata, with or without audio).
Sampling at a chosen fps, cropping and resizing happen inside ffmpeg's filter graph, so Python only
ever sees frames at their final size. Frames are ``(H, W, 3) uint8`` RGB arrays everywhere.
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from vj.core.progress import wrap

log = logging.getLogger(__name__)

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".gif", ".wmv", ".flv"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
CROPS = ("center", "letterbox", "face", "stretch")


class MediaError(Exception):
    """A file that cannot be used as media; the message says why in a few words."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int  # displayed width, after rotation metadata is applied
    height: int
    fps: float
    duration: float  # seconds; 0.0 when the container does not say

    @property
    def n_frames(self) -> int:
        return int(round(self.duration * self.fps))


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


_STREAM_RE = re.compile(r"Stream #\S+.*?: Video: (?P<rest>.*)")
_SIZE_RE = re.compile(r"(?<![0-9x])(\d{2,5})x(\d{2,5})(?![0-9x])")
_FPS_RE = re.compile(r"([\d.]+) (fps|tbr)")
_DUR_RE = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")
_ROT_RE = re.compile(r"rotation of (-?[\d.]+) degrees|rotate\s*:\s*(-?\d+)")


def probe(path: str | Path) -> VideoInfo:
    """Read a video's size, rate and duration from ffmpeg's header; raise MediaError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise MediaError("no such file")
    if path.stat().st_size == 0:
        raise MediaError("empty file")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True,
                          errors="replace")
    header = proc.stderr
    match = _STREAM_RE.search(header)
    if match is None:
        reason = header.strip().splitlines()[-1] if header.strip() else "ffmpeg could not read it"
        if "Invalid data" in header or "moov atom not found" in header:
            reason = "not a readable video (invalid data or truncated)"
        raise MediaError(reason.replace(str(path), "").strip(": "))
    rest = match.group("rest")
    size = _SIZE_RE.search(rest)
    if size is None:
        raise MediaError("video stream has no frame size")
    width, height = int(size.group(1)), int(size.group(2))
    fps_match = _FPS_RE.search(rest)
    fps = float(fps_match.group(1)) if fps_match else 25.0
    dur = _DUR_RE.search(header)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0
    rot = _ROT_RE.search(header)
    if rot is not None:
        angle = abs(float(rot.group(1) or rot.group(2))) % 180
        if angle == 90:
            width, height = height, width
    return VideoInfo(path, width, height, fps, duration)


def _filter_chain(info: VideoInfo, size: tuple[int, int] | None, crop: str, fps: float | None) -> tuple[str, int, int]:
    """The ffmpeg -vf chain and the output (width, height) it produces."""
    filters = []
    if fps:
        filters.append(f"fps={fps:g}")
    if size is None:
        out_w, out_h = info.width - info.width % 2, info.height - info.height % 2
        filters.append(f"scale={out_w}:{out_h}")
    else:
        out_w, out_h = size
        if crop == "center":
            # the seed's crop: the largest centred box with the output's aspect, then resize
            filters.append(f"crop='min(iw,ih*{out_w}/{out_h})':'min(ih,iw*{out_h}/{out_w})'")
            filters.append(f"scale={out_w}:{out_h}:flags=area")
        elif crop == "letterbox":
            filters.append(f"scale={out_w}:{out_h}:force_original_aspect_ratio=decrease:flags=area")
            filters.append(f"pad={out_w}:{out_h}:(ow-iw)/2:(oh-ih)/2:black")
        elif crop == "stretch":
            filters.append(f"scale={out_w}:{out_h}:flags=area")
        else:
            raise ValueError(f"crop {crop!r} is not one of {CROPS}")
    filters.append("format=rgb24")
    return ",".join(filters), out_w, out_h


def read_frames(path: str | Path, fps: float | None = None, size: int | tuple[int, int] | None = None,
                crop: str = "center", start: float = 0.0, duration: float | None = None) -> Iterator[np.ndarray]:
    """Yield ``(H, W, 3) uint8`` frames of one video, sampled at ``fps`` (native rate when None).

    ``size`` is a side (square) or ``(width, height)``; ``crop`` is ``center`` (centre box, the
    seed's), ``letterbox`` (whole frame on black), ``stretch`` or ``face`` (square around the largest
    face, centre box where none is found). Raises MediaError for a file with no decodable frame.
    """
    path = Path(path)
    info = probe(path)
    if isinstance(size, int):
        size = (size, size)
    if crop == "face":
        if size is None:
            raise ValueError("crop='face' needs a size")
        yield from _face_frames(path, info, fps, size, start, duration)
        return
    vf, out_w, out_h = _filter_chain(info, size, crop, fps)
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin"]
    if start > 0:
        cmd += ["-ss", f"{start:.3f}"]
    cmd += ["-i", str(path)]
    if duration is not None:
        cmd += ["-t", f"{duration:.3f}"]
    cmd += ["-an", "-sn", "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    frame_bytes = out_w * out_h * 3
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=frame_bytes * 2)
    count = 0
    try:
        while True:
            buf = proc.stdout.read(frame_bytes)
            if len(buf) < frame_bytes:
                break
            count += 1
            yield np.frombuffer(buf, np.uint8).reshape(out_h, out_w, 3)
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        proc.wait()
    if count == 0:
        raise MediaError("no decodable frames" + (f" ({err.splitlines()[-1]})" if err else ""))
    if err and proc.returncode not in (0, None, -9):
        log.warning("%s: stream ended early after %d frames (truncated?)", path.name, count)


def _face_frames(path: Path, info: VideoInfo, fps: float | None, size: tuple[int, int], start: float,
                 duration: float | None) -> Iterator[np.ndarray]:
    """Square crops around the largest face (OpenCV's bundled Haar cascade), for performer footage."""
    yield from _face_crops(read_frames(path, fps, _face_work_size(info.width, info.height), "stretch", start,
                                       duration), size)


def _face_work_size(width: int, height: int) -> tuple[int, int]:
    """The size faces are looked for at: at most 480 px, even sides."""
    scale = min(1.0, 480 / max(width, height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _face_crops(frames: Iterable[np.ndarray], size: tuple[int, int]) -> Iterator[np.ndarray]:
    import cv2

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    box = None  # last face box, kept for frames where detection misses
    for frame in frames:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        faces = cascade.detectMultiScale(gray, scaleFactor=1.2, minNeighbors=4, minSize=(24, 24))
        if len(faces):
            x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
            side = int(max(w, h) * 1.8)
            cx, cy = x + w // 2, y + h // 2
            box = (cx, cy, side)
        if box is None:
            crop = center_crop(frame, size[0] / size[1])
        else:
            cx, cy, side = box
            side = min(side, frame.shape[0], frame.shape[1])
            x0 = int(np.clip(cx - side // 2, 0, frame.shape[1] - side))
            y0 = int(np.clip(cy - side // 2, 0, frame.shape[0] - side))
            crop = frame[y0:y0 + side, x0:x0 + side]
        yield cv2.resize(crop, size, interpolation=cv2.INTER_AREA)


def drop_near_duplicates(frames: Iterable[np.ndarray], threshold: float) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, frame)`` skipping frames whose mean |difference| to the last kept one is below
    ``threshold`` (0-255 scale; 0 keeps everything). Static stretches of VJ loops collapse to one frame."""
    import cv2

    last = None
    for i, frame in enumerate(frames):
        if last is not None and threshold > 0 and cv2.absdiff(frame, last).mean() < threshold:
            continue
        last = frame
        yield i, frame


def center_crop(frame: np.ndarray, aspect: float = 1.0) -> np.ndarray:
    """The largest centred box of ``frame`` with width/height ``aspect`` (a view, no copy)."""
    h, w = frame.shape[:2]
    cw, ch = (int(h * aspect), h) if w / h > aspect else (w, int(w / aspect))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return frame[y0:y0 + ch, x0:x0 + cw]


def read_image(path: str | Path, size: int | tuple[int, int] | None = None, crop: str = "center") -> np.ndarray:
    """One still image as ``(H, W, 3) uint8`` RGB, optionally cropped and resized like video frames."""
    from PIL import Image, UnidentifiedImageError

    want = (size, size) if isinstance(size, int) else size
    try:
        with Image.open(path) as im:
            if want is not None:  # a JPEG decodes at 1/2..1/8 scale when that still covers the size: an 80 MP
                im.draft("RGB", want)  # photo for a 64 px frame takes 60 MB and 0.07 s, not 1.1 GB and 0.8 s
            arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise MediaError("no such file") from None
    except Image.DecompressionBombError:
        raise MediaError(f"too large to read (over {Image.MAX_IMAGE_PIXELS * 2 / 1e6:.0f} megapixels)") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(f"not a readable image ({exc.__class__.__name__})") from None
    if size is None:
        return arr
    return fit(arr, size, crop)


def media_frames(path: str | Path, fps: float | None = None, size: int | tuple[int, int] | None = None,
                 crop: str = "center") -> Iterator[np.ndarray]:
    """The frames of a video (``read_frames``), or the one frame of a still image, cropped alike."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_EXTS:
        yield from read_frames(path, fps, size, crop)
        return
    if crop != "face":
        yield read_image(path, size, crop)
        return
    if size is None:
        raise ValueError("crop='face' needs a size")
    image = read_image(path)
    yield from _face_crops([fit(image, _face_work_size(image.shape[1], image.shape[0]), "stretch")],
                           (size, size) if isinstance(size, int) else size)


def fit(frame: np.ndarray, size: int | tuple[int, int], crop: str = "center") -> np.ndarray:
    """Resize an in-memory frame to ``size`` with the same crop rules as ``read_frames``."""
    import cv2

    if isinstance(size, int):
        size = (size, size)
    w, h = size
    if crop == "center":
        frame = center_crop(frame, w / h)
    elif crop == "letterbox":
        fh, fw = frame.shape[:2]
        s = min(w / fw, h / fh)
        inner = cv2.resize(frame, (max(1, round(fw * s)), max(1, round(fh * s))), interpolation=cv2.INTER_AREA)
        out = np.zeros((h, w, 3), np.uint8)
        y0, x0 = (h - inner.shape[0]) // 2, (w - inner.shape[1]) // 2
        out[y0:y0 + inner.shape[0], x0:x0 + inner.shape[1]] = inner
        return out
    interp = cv2.INTER_AREA if frame.shape[1] > w else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(frame), (w, h), interpolation=interp)


def _files_under(folder: Path) -> list[Path]:
    """The files under ``folder``, sorted, following linked folders (a library on another drive), each real
    folder once (a link to a parent is not a loop); hidden files and folders (``.Trashes``, ``._clip.mp4``)
    are not media."""
    out, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        out += [Path(root) / f for f in files if not f.startswith(".") and os.path.isfile(os.path.join(root, f))]
    return sorted(out)


def find_media(paths: Iterable[str | Path], exts: set[str] = VIDEO_EXTS, skip: Iterable[Path] = ()) -> list[Path]:
    """Files with one of ``exts`` under the given files/folders, sorted, each once.

    ``skip``: folders whose files a folder's walk leaves out (the runs folder: the tool's own clips, samples
    and posters, when it lies inside the loops folder, would otherwise train the next run). A skipped folder
    given itself, or one inside it, is read as asked."""
    found: list[Path] = []
    skip = [Path(s).resolve() for s in skip]
    for p in map(Path, paths):
        if p.is_dir():
            inside = [s for s in skip if p.resolve() in s.parents]
            files = [f for f in _files_under(p) if f.suffix.lower() in exts]
            kept = [f for f in files if not any(s in f.resolve().parents for s in inside)]
            if len(kept) < len(files):
                n = len(files) - len(kept)
                log.info("%s: left out %d file%s under %s (this tool's own output)", p, n, "s" * (n != 1),
                         ", ".join(str(s) for s in inside))
            found += kept
        elif p.exists():
            found.append(p)
        else:
            raise MediaError(f"{p}: no such file or folder")
    return sorted(dict.fromkeys(found))


def library_size(files: list[Path], name: str = "library") -> tuple[float, int]:
    """(seconds of video, number of still images) among ``files`` (a header read each, 18 ms: a thousand loops
    take 20 s, with progress); a video whose header gives no length counts nothing (the cache names it
    if it cannot be read)."""
    seconds, stills = 0.0, 0
    for f in wrap(files, len(files), f"measuring {name}", "file"):
        if f.suffix.lower() in IMAGE_EXTS:
            stills += 1
            continue
        with contextlib.suppress(MediaError):
            seconds += probe(f).duration
    return seconds, stills


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


VIDEO_OUT_EXTS = {".mp4", ".mov", ".mkv", ".m4v"}  # the containers that take H.264 (and AAC)


class VideoWriter:
    """Streaming H.264 writer: frames go to ffmpeg as they come, the clip is never held in memory.
    ``audio``: a file whose soundtrack is muxed in (AAC), cut to the video's length. ``preset``: x264's
    speed/size trade at the same quality (CRF 17): ``veryfast`` by default; ``ultrafast`` costs a third of
    its CPU for files about twice the size (live recording, renders that must keep up with real time)."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], quality: float = 6.5,
                 audio: str | Path | None = None, preset: str = "veryfast"):
        import imageio_ffmpeg

        w, h = size
        if w % 2 or h % 2:
            raise ValueError(f"video size must be even, got {w}x{h}")
        if preset not in X264_PRESETS:
            raise ValueError(f"x264 preset {preset!r} is not one of {', '.join(X264_PRESETS)}")
        if Path(path).suffix.lower() not in VIDEO_OUT_EXTS:  # .gif or .png: ffmpeg would fail after the work
            raise ValueError(f"{path}: videos are written as H.264 in {', '.join(sorted(VIDEO_OUT_EXTS))} "
                             f"(not {Path(path).suffix or 'a name without an extension'})")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = (w, h)
        self.frames = 0
        self._tmp = self.path.with_name(f".{self.path.stem}.part{self.path.suffix}")
        extra = {"audio_path": str(audio), "audio_codec": "aac"} if audio else {}
        # frames go in as YUV 4:2:0, converted by OpenCV on the feeder thread (1.3 ms a 1080p frame): ffmpeg's
        # own RGB conversion cost 7-10 ms of its CPU a frame, a fifth of x264 ultrafast's whole budget. Same
        # BT.601 limited-range matrix as ffmpeg's, so the colours in the file do not change.
        self._gen = imageio_ffmpeg.write_frames(
            str(self._tmp), (w, h), fps=fps, codec="libx264", quality=quality, macro_block_size=2,
            pix_fmt_in="yuv420p", pix_fmt_out="yuv420p", ffmpeg_log_level="error",
            # CRF 17 is visually clean; veryfast is 2-3x cheaper than x264's default preset on two cores
            output_params=["-preset", preset, "-movflags", "+faststart"] + (["-shortest"] if audio else []),
            **extra)
        self._gen.send(None)
        # a feeder thread pipes frames to ffmpeg while the caller makes the next one (a 6 MB frame does not
        # fit a 64 KB pipe: written inline, every frame would wait for ffmpeg to read it)
        self._queue: queue.Queue = queue.Queue(maxsize=3)
        self._error: BaseException | None = None
        self._feeder = threading.Thread(target=self._feed, name="video-writer", daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        import cv2

        while (frame := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._gen.send(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420))
                except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread on its next call
                    self._error = exc

    def _why(self) -> str:
        return (str(self._error).strip().splitlines() or [type(self._error).__name__])[0]  # not imageio's dump

    def write(self, frame: np.ndarray) -> None:
        """Queue one frame (the writer keeps a reference: do not change the array afterwards)."""
        if frame.shape[1::-1] != self.size:
            raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, writer is {self.size[0]}x{self.size[1]}")
        if self._error is not None:
            raise MediaError(f"{self.path}: ffmpeg stopped: {self._why()}")
        self._queue.put(np.ascontiguousarray(frame, dtype=np.uint8))
        self.frames += 1

    def close(self) -> None:
        if self._gen is None:
            return
        self._queue.put(None)
        self._feeder.join()
        self._gen.close()
        self._gen = None
        if self._error is not None:
            raise MediaError(f"{self.path}: ffmpeg stopped: {self._why()}")
        self._tmp.replace(self.path)  # the file appears whole or not at all

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def count_frames(path: str | Path) -> int:
    """Exact decoded frame count (decodes the whole file; for tests and checks)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


SKIPS_SAID = 10  # the first unreadable files each get a line as they are met; the rest only the closing one


def note_unreadable(skipped: list[tuple[Path, str]], path: Path, why: str, shown: str | None = None) -> None:
    """Note an unreadable file in ``skipped`` and say so, for the first SKIPS_SAID of them."""
    skipped.append((path, why))
    if len(skipped) <= SKIPS_SAID:
        log.warning("skipping %s: %s", shown or path, why)
    if len(skipped) == SKIPS_SAID:
        log.warning("(more unreadable files are counted, not listed, until the end)")


def skip_report(used: Sequence[Path], skipped: Sequence[tuple[Path, str]]) -> str:
    """``used 3 videos and 20 images, skipped 1: x.mp4 (why)``; ``skipped 2: ...`` where none was used."""
    stills = sum(Path(p).suffix.lower() in IMAGE_EXTS for p in used)
    kinds = [f"{n} {word}{'s' * (n != 1)}" for n, word in ((len(used) - stills, "video"), (stills, "image")) if n]
    parts = [f"used {' and '.join(kinds)}"] if kinds else []
    if skipped or not kinds:  # a few named, with their reasons: a folder of 10,000 broken files is one line
        named = ", ".join(f"{p.name} ({why})" for p, why in skipped[:5])
        parts.append(f"skipped {len(skipped)}: {named}" + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""))
    return ", ".join(parts)
