"""Video-file outputs: frame-exact for offline renders, wall-clock timed for recording a live show."""
from __future__ import annotations

import numpy as np

from vj.core.media import VideoWriter

# x264 preset of offline show renders. Measured on a 1080p30 render of the benchmark show (2-core CPU, CRF 17):
# superfast 24 ms of CPU a frame, veryfast 37 ms, so only superfast leaves the renderer room to stay ahead of
# real time (1.4x against 1.0x); its file is 44% larger (14 vs 10 Mbit/s) at an SSIM as high (0.992 vs
# 0.988). `vj render --preset veryfast` (or slower) trades time for smaller files.
SHOW_PRESET = "superfast"


class FileOutput:
    """Every frame the engine makes, in order: with a fixed clock this is the frame-exact render."""

    def __init__(self, path, fps: float, size: tuple[int, int], audio=None, preset: str = SHOW_PRESET):
        self.writer = VideoWriter(path, fps, size, audio=audio, preset=preset)
        self.failed: Exception | None = None  # why the file stopped (a full disk): a render ends on it

    def write(self, frame: np.ndarray, t: float) -> None:
        try:
            self.writer.write(frame)
        except Exception as exc:
            self.failed = exc
            raise

    def close(self) -> None:
        self.writer.close()


class RecordOutput(FileOutput):
    """Records a live show with its true timing: a frame is repeated for as long as it was on screen."""

    def __init__(self, path, fps: float, size: tuple[int, int], preset: str = "ultrafast"):
        super().__init__(path, fps, size, preset=preset)  # the show comes first: the cheapest encoding
        self.fps = fps
        self.t0: float | None = None
        self.last: np.ndarray | None = None

    def write(self, frame: np.ndarray, t: float) -> None:
        if self.t0 is None:
            self.t0 = t
        due = int((t - self.t0) * self.fps)  # frame slots elapsed up to this moment
        while self.last is not None and self.writer.frames < due:
            self.writer.write(self.last)
        if self.writer.frames <= due:
            self.writer.write(frame)
        self.last = frame
