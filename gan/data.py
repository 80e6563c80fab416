"""A genre's training frames as one compact, memory-mapped uint8 cache (not thousands of PNGs).

    runs/gan/<genre>/frames/frames.u8    raw (N, S, S, 3) uint8, appended video by video
    runs/gan/<genre>/frames/index.json   size, crop, fps, and each video's (path, bytes, mtime, start, count)

Adding a video to the folder adds only its frames on the next run; a video that disappeared or changed
is left out of training (its old frames stay in the file until ``rebuild``). The index is written after
the frames, atomically, so a crash mid-append leaves a tail that the next run truncates.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vj.core.media import (IMAGE_EXTS, VIDEO_EXTS, MediaError, drop_near_duplicates, find_media, media_frames,
                           note_unreadable, skip_report)
from vj.core.progress import wrap
from vj.core.runs import atomic_write_text

log = logging.getLogger(__name__)


class NoUsableVideo(Exception):
    """The folder holds no video that yields frames; nothing was written."""


TRAIN_EXTS = VIDEO_EXTS | IMAGE_EXTS  # loops, and stills (one frame each: a few-shot genre of 80 images)


def training_files(videos_dir: str | Path, skip: tuple[Path, ...] = ()) -> list[Path]:
    """The videos and still images a genre trains on, sorted (none under ``skip``: the runs folder)."""
    return find_media([Path(videos_dir).expanduser()], TRAIN_EXTS, skip=skip)


@dataclass
class FrameCache:
    path: Path            # the frames/ folder
    frames: np.memmap     # (N, S, S, 3) uint8, all frames in the file
    active: np.ndarray    # (M,) int64 indices of frames whose video is still present
    report: str           # one line: videos used / skipped

    def __len__(self) -> int:
        return len(self.active)


def _video_key(p: Path) -> dict:
    st = p.stat()
    return {"path": str(p.resolve()), "bytes": st.st_size, "mtime": int(st.st_mtime)}


def build_cache(videos_dir: str | Path, out_dir: str | Path, size: int, fps: float, crop: str = "center",
                dedupe: float = 1.0, progress: bool = True, skip: tuple[Path, ...] = ()) -> FrameCache:
    """Bring ``out_dir`` up to date with the videos under ``videos_dir`` (but not under ``skip``: the runs
    folder) and memory-map it."""
    out_dir = Path(out_dir)
    videos_dir = Path(videos_dir).expanduser()
    files = training_files(videos_dir, skip)
    settings = {"size": size, "fps": fps, "crop": crop, "dedupe": dedupe}
    index_path, data_path = out_dir / "index.json", out_dir / "frames.u8"
    index = {"settings": settings, "videos": [], "total": 0}
    if index_path.exists():
        try:
            old = json.loads(index_path.read_text())
            if old.get("settings") == settings:
                index = old
            else:
                log.info("frame cache settings changed: rebuilding %s", out_dir)
        except (json.JSONDecodeError, OSError):
            log.warning("frame cache index %s is damaged: rebuilding", index_path)
    frame_bytes = size * size * 3
    known = {(v["path"], v["bytes"], v["mtime"]) for v in index["videos"]}
    todo = [f for f in files if tuple(_video_key(f).values()) not in known]
    used, skipped = [], []
    if todo:
        out_dir.mkdir(parents=True, exist_ok=True)
        if index["total"] == 0 and data_path.exists():
            data_path.unlink()
        with open(data_path, "ab") as data:
            data.truncate(index["total"] * frame_bytes)  # drop a tail left by a crash mid-append
            data.seek(index["total"] * frame_bytes)
            for video in wrap(todo, len(todo), f"caching frames {out_dir.parent.name}", "video",
                              None if progress else False):
                count = 0
                try:
                    for _, frame in drop_near_duplicates(media_frames(video, fps, size, crop), dedupe):
                        data.write(frame.tobytes())
                        count += 1
                except MediaError as exc:
                    data.truncate(index["total"] * frame_bytes)
                    data.seek(index["total"] * frame_bytes)
                    note_unreadable(skipped, video, str(exc))
                    continue
                index["videos"].append({**_video_key(video), "start": index["total"], "count": count})
                index["total"] += count
                used.append(video)
            data.flush()
            os.fsync(data.fileno())
        if index["total"]:
            atomic_write_text(index_path, json.dumps(index, indent=1))
    present = {str(f.resolve()): _video_key(f) for f in files}
    live = [v for v in index["videos"] if present.get(v["path"]) == {k: v[k] for k in ("path", "bytes", "mtime")}]
    if not live:
        if index["total"] == 0:  # nothing usable: leave no trace behind
            data_path.unlink(missing_ok=True)
            for folder in (out_dir, out_dir.parent):
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise NoUsableVideo(f"{videos_dir}: no usable video or image ({skip_report(used, skipped)})" if files
                            else f"{videos_dir}: no videos or images found")
    active = np.concatenate([np.arange(v["start"], v["start"] + v["count"]) for v in live])
    frames = np.memmap(data_path, np.uint8, "r", shape=(index["total"], size, size, 3))
    cached = len(live) - len(used)
    n = len(active)
    report = (skip_report([Path(v["path"]) for v in live], skipped)
              + f" ({cached} from cache), {n} frame{'s' * (n != 1)}")
    return FrameCache(out_dir, frames, active, report)
