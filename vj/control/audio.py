"""Audio as a control input: the level and onsets of a track or a live input drive parameters and actions.

``AudioAnalyzer`` is pure array code: a block of samples -> (level 0..1, onset yes/no), with spectral-flux
onsets against an adaptive threshold. ``AudioFileInput`` feeds it the block of a track that belongs to each
video frame, so an offline render is repeatable and in sync with the music it is muxed with;
``AudioDeviceInput`` feeds it a live input (the ``audio`` extra, sounddevice) from its own thread.

A scene's ``[audio]`` table routes the results:

    [audio]
    level = "fx.glitch.amount"   # this parameter follows the level, across its whole range
    onset = "jump"               # this action fires on every onset (any key action: "fx.strobe.on toggle")
    gain = 1.0                   # level sensitivity
"""
from __future__ import annotations

import logging
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vj.core.media import MediaError, ffmpeg_exe

log = logging.getLogger(__name__)
RATE = 22050


@dataclass
class AudioRoute:
    level: str = ""       # parameter that follows the level
    onset: str = ""       # action fired on an onset
    gain: float = 1.0


class AudioAnalyzer:
    def __init__(self, rate: int = RATE, gain: float = 1.0, sensitivity: float = 1.5, refractory: float = 0.1):
        self.rate = rate
        self.gain = gain
        self.sensitivity = sensitivity
        self.refractory = refractory
        self.level = 0.0
        self.prev_spectrum: np.ndarray | None = None
        self.flux_history: list[float] = []
        self.since_onset = 1e9

    def process(self, block: np.ndarray) -> tuple[float, bool]:
        """One block of mono float samples in [-1, 1] -> (smoothed level 0..1, onset)."""
        seconds = len(block) / self.rate
        rms = float(np.sqrt(np.mean(block.astype(np.float64) ** 2))) if len(block) else 0.0
        db = 20 * np.log10(max(rms * self.gain, 1e-6))
        target = float(np.clip((db + 60) / 60, 0, 1))  # -60 dBFS .. 0 dBFS -> 0 .. 1
        k = 0.6 if target > self.level else 0.15      # fast attack, slower release
        self.level += (target - self.level) * k
        spectrum = np.abs(np.fft.rfft(block * np.hanning(len(block)))) if len(block) > 1 else np.zeros(1)
        onset = False
        if self.prev_spectrum is not None and len(self.prev_spectrum) == len(spectrum):
            flux = float(np.maximum(spectrum - self.prev_spectrum, 0).sum())
            hist = self.flux_history[-43:]
            threshold = (np.mean(hist) + self.sensitivity * np.std(hist)) if len(hist) >= 4 else np.inf
            self.since_onset += seconds
            if flux > threshold and flux > 1e-3 and self.since_onset >= self.refractory:
                onset, self.since_onset = True, 0.0
            self.flux_history.append(flux)
        self.prev_spectrum = spectrum
        return self.level, onset


def decode_audio(path: str | Path, rate: int = RATE) -> np.ndarray:
    """A file's audio as mono float32 at ``rate``; MediaError when it has none."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-vn", "-ac", "1",
                           "-ar", str(rate), "-f", "f32le", "pipe:1"], capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        raise MediaError(f"{Path(path).name}: no readable audio")
    return np.frombuffer(proc.stdout, np.float32)


class AudioFileInput:
    """The block of a track under each video frame: frame i gets samples [i, i+1) / fps."""

    def __init__(self, path: str | Path, fps: float, gain: float = 1.0):
        self.path = Path(path)
        self.samples = decode_audio(path)
        self.fps = fps
        self.analyzer = AudioAnalyzer(gain=gain)
        self.next_frame = 0

    @property
    def seconds(self) -> float:
        return len(self.samples) / RATE

    def read(self, frame_index: int) -> tuple[float, bool]:
        """Analyse every block up to ``frame_index`` (frames are analysed in order, once each)."""
        onset = False
        level = self.analyzer.level
        while self.next_frame <= frame_index:
            a = int(self.next_frame * RATE / self.fps)
            b = int((self.next_frame + 1) * RATE / self.fps)
            level, hit = self.analyzer.process(self.samples[a:b])
            onset |= hit
            self.next_frame += 1
        return level, onset

    def close(self) -> None:
        pass


class AudioDeviceInput:
    """A live input (microphone, line in, loopback device) analysed on the audio thread."""

    def __init__(self, device: str | None = None, gain: float = 1.0):
        try:
            import sounddevice
        except ImportError:
            raise ValueError("live audio input needs sounddevice: pip install 'reframe-vj[audio]'") from None
        self.analyzer = AudioAnalyzer(gain=gain)
        self._onset = False
        self._lock = threading.Lock()
        try:
            self.stream = sounddevice.InputStream(device=device or None, channels=1, samplerate=RATE,
                                                  blocksize=RATE // 60, callback=self._callback)
            self.stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudio errors come in many types
            raise ValueError(f"audio input {device or 'default'}: {exc}".splitlines()[0]) from None

    def _callback(self, data, frames, time_info, status) -> None:
        level, onset = self.analyzer.process(data[:, 0].copy())
        with self._lock:
            self._onset |= onset

    def read(self, frame_index: int) -> tuple[float, bool]:
        with self._lock:
            onset, self._onset = self._onset, False
        return self.analyzer.level, onset

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()
