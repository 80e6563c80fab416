"""The show follows the music: one analysis of a track or a live input, the same on both.

``Analyzer`` takes mono samples at 22,050 Hz in any blocks and works in hops of 256 samples (11.6 ms) over a
2048-sample window. Per hop it keeps:
  level                          loudness, 0..1 (-60..0 dBFS, fast attack, slower release)
  low, mid, high                 band energies (20-200 Hz, 200 Hz-2 kHz, 2-11 kHz), each normalised against
                                 its own recent range (adaptive: a quiet track still moves them end to end)
  onset_low, onset_mid, onset_high   spectral-flux onsets per band against an adaptive threshold
  percussive, harmonic           a streaming harmonic/percussive split: the median of the last hops per bin
                                 (what holds still is harmonic) against the median over neighbouring bins of
                                 the current hop (what is broadband is percussive), as soft masks
  chroma (12)                    the spectrum folded onto pitch classes C..B, loudest = 1
and a beat tracker (``BeatTracker``) on the kick-weighted onset envelope: tempo by autocorrelation, then
refined by fitting a line through the beat times it found; the beats it reports are that line's, so they
land on the kick, not on an off-beat hat, and keep coming through a break.

Everything is numpy and one numba pass per hop (no aubio, no librosa: see scripts/bench/RESULTS.md). ``AudioFileInput`` feeds the analyzer the samples under each video frame, in order, so a
render is frame-exact and repeatable; ``AudioDeviceInput`` feeds a live input (sounddevice) from its thread.
"""
from __future__ import annotations

import logging
import subprocess
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

from vj.core.media import MediaError, ffmpeg_exe

log = logging.getLogger(__name__)
RATE = 22050
HOP = 256
WIN = 2048
BANDS = {"low": (20.0, 200.0), "mid": (200.0, 2000.0), "high": (2000.0, 11025.0)}
# how late the kick's flux peaks after the kick starts, with this window and hop (measured on synthesised
# kicks at 85-174 BPM: 41-43 ms); the beats the tracker reports are moved back by it
ONSET_LATENCY = 0.042
FEATURES = ("level", "low", "mid", "high", "percussive", "harmonic")  # continuous, 0..1
ONSETS = ("onset", "onset_low", "onset_mid", "onset_high")            # events


@dataclass
class AudioRoute:
    """A scene's ``[audio]`` table: which parameter follows which feature, which action fires on which onset.

        [audio]
        level = "fx.split.amount"     # a parameter follows a feature across its whole range
        low = "layer.gan.opacity"     # any of: level, low, mid, high, percussive, harmonic
        onset = "fx.hue.degrees+=24"  # an action on every onset; onset_low, onset_mid, onset_high too
        gain = 1.0                    # input sensitivity
    """
    follow: dict[str, str] = field(default_factory=dict)   # feature -> parameter
    fire: dict[str, str] = field(default_factory=dict)     # onset kind -> action
    gain: float = 1.0


@dataclass
class Frame:
    """What the analysis says at one video frame (onsets: any since the previous frame)."""
    level: float = 0.0
    low: float = 0.0
    mid: float = 0.0
    high: float = 0.0
    percussive: float = 0.0
    harmonic: float = 0.0
    onset: bool = False
    onset_low: bool = False
    onset_mid: bool = False
    onset_high: bool = False
    chroma: tuple = (0.0,) * 12
    bpm: float = 0.0               # the tracker's tempo (0 until locked)
    beat_time: float | None = None  # seconds (on the input's own time line) of a beat of the fitted grid
    locked: bool = False


class Normaliser:
    """A value's place in its own recent range: any new extreme widens the range at once, and the range
    relaxes towards its middle over ``memory`` seconds, so each band uses its whole 0..1 whatever the
    track's mix (a range never narrower than ``floor``: silence is not amplified into noise)."""

    def __init__(self, hop_s: float, memory: float = 4.0, floor: float = 1.0):
        self.decay = float(np.exp(-hop_s / memory))
        self.floor = floor
        self.lo: float | None = None
        self.hi = 0.0

    def __call__(self, x: float) -> float:
        if self.lo is None:
            self.lo, self.hi = x - self.floor / 2, x + self.floor / 2
        mid = (self.lo + self.hi) / 2
        self.hi = max(x, mid + (self.hi - mid) * self.decay)
        self.lo = min(x, mid - (mid - self.lo) * self.decay)
        if self.hi - self.lo < self.floor:
            mid = (self.lo + self.hi) / 2
            self.lo, self.hi = mid - self.floor / 2, mid + self.floor / 2
        return min(1.0, max(0.0, (x - self.lo) / (self.hi - self.lo)))


class OnsetDetector:
    """Spectral flux (the mean rise of log magnitude per bin) against its running mean plus ``k`` deviations
    (exponential, over about a second) and an absolute floor, with a refractory time."""

    FLOOR = 0.3  # the least mean rise of log magnitude per bin that is an onset (a kick's leakage into the
                 # treble after silence is ~0.1, a hat there ~4)

    def __init__(self, hop_s: float, k: float = 1.6, refractory: float = 0.08, memory: float = 1.0,
                 floor: float | None = None):
        self.alpha = hop_s / memory
        self.floor = self.FLOOR if floor is None else floor
        self.k, self.refractory, self.hop_s = k, refractory, hop_s
        self.mean = self.var = 0.0
        self.seen = 0
        self.since = 1e9

    def __call__(self, flux: float) -> bool:
        self.since += self.hop_s
        hit = self.seen >= 8 and flux > max(self.floor, self.mean + self.k * self.var ** 0.5) and \
            self.since >= self.refractory
        d = flux - self.mean
        self.mean += self.alpha * d
        self.var = (1 - self.alpha) * (self.var + self.alpha * d * d)
        self.seen += 1
        if hit:
            self.since = 0.0
        return hit


class Analyzer:
    def __init__(self, rate: int = RATE, gain: float = 1.0):
        if rate != RATE:
            raise ValueError(f"the analysis runs at {RATE} Hz")
        self.gain = gain
        self.hop_s = HOP / RATE
        self.buffer = np.zeros(WIN, np.float32)   # the last WIN samples
        self.pending = np.zeros(0, np.float32)    # samples not yet a whole hop
        self.hops = 0                              # hops analysed: the time line is hops * HOP / RATE
        self.window = np.hanning(WIN).astype(np.float32)
        freqs = np.fft.rfftfreq(WIN, 1 / RATE)
        # each band's bins, a contiguous run (first, end) of the sorted frequencies
        self.band_edges = np.array([np.searchsorted(freqs, [lo, hi]) for lo, hi in BANDS.values()], np.int64)
        # 256 coarse bins (log-spaced above 100 Hz) for the harmonic/percussive split: a tenth of the work
        edges = np.unique(np.round(np.geomspace(5, len(freqs) - 1, 257)).astype(int))
        self.coarse = (edges[:-1], edges[1:])
        self.hpss_history = np.zeros((9, len(self.coarse[0])), np.float32)  # the last 9 hops, a ring
        self.chroma_matrix = _chroma_matrix(freqs)
        self.prev_log = np.zeros(len(freqs))                       # last hop's log magnitudes
        self.prev_low = np.zeros(int(np.diff(self.band_edges[0])[0]))  # last hop's low band magnitudes
        self.norm = {k: Normaliser(self.hop_s) for k in (*BANDS, "percussive", "harmonic")}
        self.onsets = {k: OnsetDetector(self.hop_s) for k in ONSETS}
        self.onsets["onset_low"] = OnsetDetector(self.hop_s, k=2.0, refractory=0.12, floor=1.0)
        self.state = Frame()
        self._fired = dict.fromkeys(ONSETS, False)
        self.tracker = BeatTracker(self.hop_s)
        # compiled (or loaded from numba's cache) now, at start, not on the first hop of a live input
        _hop_stats(np.zeros(len(freqs)), self.prev_log.copy(), self.prev_low.copy(), True, self.band_edges,
                   *self.coarse, self.hpss_history.copy(), 0, 1)

    @property
    def time(self) -> float:
        """Seconds of input analysed so far (the end of the last hop)."""
        return self.hops * self.hop_s

    def feed(self, samples: np.ndarray) -> None:
        """Mono float samples in [-1, 1], any count: every whole hop is analysed now."""
        data = np.concatenate([self.pending, np.asarray(samples, np.float32) * self.gain])
        n = len(data) // HOP
        for i in range(n):
            self._hop(data[i * HOP:(i + 1) * HOP])
        self.pending = data[n * HOP:]

    def read(self) -> Frame:
        """The state now; onsets are those since the last read."""
        s = self.state
        frame = Frame(s.level, s.low, s.mid, s.high, s.percussive, s.harmonic, *(self._fired[k] for k in ONSETS),
                      s.chroma, self.tracker.bpm, self.tracker.beat_time, self.tracker.locked)
        self._fired = dict.fromkeys(ONSETS, False)
        return frame

    def _hop(self, hop: np.ndarray) -> None:
        self.buffer = np.concatenate([self.buffer[HOP:], hop])
        self.hops += 1
        s = self.state
        rms = float(np.sqrt(np.mean(hop.astype(np.float64) ** 2)))
        target = float(np.clip((20 * np.log10(max(rms, 1e-6)) + 60) / 60, 0, 1))
        s.level += (target - s.level) * (0.5 if target > s.level else 0.08)   # fast attack, slower release
        mag = np.abs(np.fft.rfft(self.buffer * self.window))
        power = mag * mag
        first = self.hops == 1
        out = _hop_stats(mag, self.prev_log, self.prev_low, first, self.band_edges, self.coarse[0], self.coarse[1],
                         self.hpss_history, self.hops % 9, min(self.hops, 9))
        band_power, band_flux, flux_mean, perc_energy, harm_energy, kick = out
        for i, name in enumerate(BANDS):
            setattr(s, name, self.norm[name](float(np.log1p(band_power[i]))))
            if name != "low" and self.onsets[f"onset_{name}"](float(band_flux[i])):
                self._fired[f"onset_{name}"] = True
        if self.onsets["onset"](flux_mean):
            self._fired["onset"] = True
        s.percussive = self.norm["percussive"](float(np.log1p(perc_energy)))
        s.harmonic = self.norm["harmonic"](float(np.log1p(harm_energy)))
        chroma = self.chroma_matrix @ power
        s.chroma = tuple((chroma / (chroma.max() + 1e-12)).tolist())
        # the beat: the kick's onset strength (``kick`` above), the low band's flux of linear magnitudes (a
        # hat's noise reaches the low bins too, and on the log scale of the onsets above it would win)
        self.tracker.hop(kick, self.time)
        if self.onsets["onset_low"](kick):  # a bass onset is a kick: the same linear flux, not a hat's noise
            self._fired["onset_low"] = True


@njit(inline="always")
def _median9(v: np.ndarray) -> float:
    """The median of 9 values (sorted in place: insertion sort, 9 is tiny)."""
    for i in range(1, 9):
        x = v[i]
        j = i - 1
        while j >= 0 and v[j] > x:
            v[j + 1] = v[j]
            j -= 1
        v[j + 1] = x
    return v[4]


@njit(cache=True, nogil=True)
def _hop_stats(mag, prev_log, prev_low, first, bands, lo, hi, history, row, kept):
    """One hop's statistics from its magnitude spectrum ``mag``, in one pass over its bins (they were two
    dozen numpy calls, 0.26 ms of CPU a 60 fps frame): per band the power and the mean rise of log
    magnitude (spectral flux), the whole spectrum's flux, the harmonic/percussive energies on the coarse
    bins ``lo:hi`` (the median over the last ``kept`` hops of ``history``, where this hop goes to ``row``,
    against the median over 9 neighbouring coarse bins), and the kick: the low band's rise of linear
    magnitude. ``prev_log`` and ``prev_low`` are updated in place; ``first``: nothing to rise from."""
    n = len(mag)
    flux_sum = 0.0
    band_power = np.zeros(3)
    band_flux = np.zeros(3)
    flux = np.empty(n)
    for i in range(n):
        lm = np.log1p(10.0 * mag[i])
        flux[i] = 0.0 if first else max(0.0, lm - prev_log[i])
        prev_log[i] = lm
        flux_sum += flux[i]
    for b in range(3):
        a, e = bands[b, 0], bands[b, 1]
        p = 0.0
        f = 0.0
        for i in range(a, e):
            p += mag[i] * mag[i]
            f += flux[i]
        band_power[b] = p
        band_flux[b] = f / max(1, e - a)
    kick = 0.0
    a0 = bands[0, 0]
    for i in range(len(prev_low)):
        if not first:
            kick += max(0.0, mag[a0 + i] - prev_low[i])
        prev_low[i] = mag[a0 + i]
    m = len(lo)
    coarse = np.empty(m)
    for c in range(m):
        t = 0.0
        for i in range(lo[c], hi[c]):
            t += mag[i]
        coarse[c] = t / (hi[c] - lo[c])
        history[row, c] = coarse[c]
    v = np.empty(9)
    perc_energy = 0.0
    harm_energy = 0.0
    for c in range(m):
        for k in range(kept):
            v[k] = history[k, c]
        if kept == 9:
            harm = _median9(v)
        else:  # the first hops: the median of those there are (numpy's partition, the upper middle)
            w = np.sort(v[:kept])
            harm = w[kept // 2]
        for k in range(9):
            v[k] = coarse[min(m - 1, max(0, c + k - 4))]  # edges repeated
        perc = _median9(v)
        mask = perc * perc / (perc * perc + harm * harm + 1e-12)
        energy = coarse[c] * coarse[c]
        perc_energy += energy * mask
        harm_energy += energy * (1.0 - mask)
    return band_power, band_flux, flux_sum / n, perc_energy, harm_energy, kick


def _chroma_matrix(freqs: np.ndarray) -> np.ndarray:
    """(12, bins): each bin from 55 Hz to 5 kHz to its pitch class (C = 0), spread over its neighbour by
    distance, weighted down at the top (overtones)."""
    m = np.zeros((12, len(freqs)))  # float64, as the power it multiplies (a float32 matrix was cast every hop)
    ok = (freqs >= 55) & (freqs <= 5000)
    midi = 69 + 12 * np.log2(np.maximum(freqs, 1e-6) / 440.0)
    pc = (midi - 60) % 12   # C = 0
    for b in np.flatnonzero(ok):
        c0 = int(np.floor(pc[b])) % 12
        frac = pc[b] - np.floor(pc[b])
        w = 1.0 / (1.0 + freqs[b] / 2000.0)
        m[c0, b] += (1 - frac) * w
        m[(c0 + 1) % 12, b] += frac * w
    return m


class BeatTracker:
    """Tempo and beat phase from an onset-strength envelope at the hop rate, causal (live and offline alike).

    Every half second the tempo is estimated by the autocorrelation of the last 8 s of the envelope (a comb
    over 1-4 periods, the fastest of the near-best candidates between 70 and 180 BPM: a kick on every beat
    makes the beat the fastest strong period). Envelope peaks near the predicted beats are taken as beat
    times (interpolated between hops); a line fitted through the last 16 of them gives the tempo and the
    phase (``beat_time``, ``bpm``). A tempo that moves more than 4% re-locks the grid."""

    def __init__(self, hop_s: float, window_s: float = 8.0):
        self.hop_s = hop_s
        self.env: deque[float] = deque(maxlen=int(window_s / hop_s))
        self.times: deque[float] = deque(maxlen=int(window_s / hop_s))
        self.period = 0.0               # seconds (0: not locked)
        self.beats: deque[float] = deque(maxlen=16)  # observed beat times
        self.beat_time: float | None = None
        self.bpm = 0.0
        self.locked = False
        self._since_estimate = 0
        self._candidate = 0.0            # a new tempo seen once, waiting for a second estimate to agree
        self._next: float | None = None  # the next predicted beat

    def hop(self, strength: float, t: float) -> None:
        self.env.append(strength)
        self.times.append(t)
        self._since_estimate += 1
        if self._since_estimate * self.hop_s >= 0.5 and len(self.env) * self.hop_s >= 3.0:
            self._since_estimate = 0
            self._estimate()
        if self.period > 0 and len(self.env) >= 3:
            self._observe()

    def _estimate(self) -> None:
        x = np.fromiter(self.env, float)
        x = x - x.mean()
        n = len(x)
        spec = np.fft.rfft(x, 2 * n)
        acf = np.fft.irfft(spec * np.conj(spec))[:n]
        if acf[0] <= 0:
            return
        acf /= acf[0]
        lags = np.arange(int(60 / 180 / self.hop_s), int(60 / 70 / self.hop_s) + 1)
        score = np.zeros(len(lags))
        for k, w in ((1, 1.0), (2, 0.5), (3, 0.33), (4, 0.25)):
            idx = np.minimum(lags * k, n - 1)
            score += w * _peak(acf, idx)
        best = score.max()
        if best <= 0.05:
            return
        candidates = lags[score >= 0.85 * best]
        lag = int(candidates.min())
        if _alternates(np.fromiter(self.env, float), lag) and lag * 2 <= lags[-1]:
            lag *= 2  # every other peak is much weaker: those are off-beats, the beat is twice as long
        period = _refine(acf, lag) * self.hop_s
        if self.period == 0:
            self.period = period
        elif abs(period - self.period) / self.period > 0.04:
            # a new tempo re-locks the grid once two estimates in a row (a second) agree on it: one estimate
            # that finds the off-beats (an octave) or a fill does not throw the lock away
            if self._candidate and abs(period - self._candidate) / self._candidate < 0.04:
                self.period, self._candidate = period, 0.0
                self.beats.clear()
                self.locked = False
                self._next = None
            else:
                self._candidate = period
        else:
            self._candidate = 0.0

    def _observe(self) -> None:
        """A peak of the envelope (at the hop before last) near the predicted beat is a beat."""
        e, t = self.env, self.times
        a, b, c = e[-3], e[-2], e[-1]
        if not (b > a and b >= c):
            return
        recent = np.fromiter(e, float)[-int(2 * self.period / self.hop_s):]
        if b < recent.mean() + 1.0 * recent.std():
            return
        # parabolic interpolation of the peak's time
        denom = a - 2 * b + c
        offset = 0.5 * (a - c) / denom if denom != 0 else 0.0
        when = t[-2] + offset * self.hop_s - ONSET_LATENCY
        if self._next is not None and abs(when - self._next) > 0.25 * self.period:
            return  # not a beat of this grid (an off-beat hat, a fill)
        if self.beats and when - self.beats[-1] < 0.5 * self.period:
            return
        self.beats.append(when)
        self._fit()

    def _fit(self) -> None:
        ts = np.fromiter(self.beats, float)
        k = np.round((ts - ts[0]) / self.period)
        if len(ts) >= 4 and len(np.unique(k)) >= 3:
            slope, intercept = np.polyfit(k, ts, 1)
            if 0.9 * self.period < slope < 1.1 * self.period:
                resid = ts - (intercept + slope * k)
                keep = np.abs(resid) < 0.06
                if keep.sum() >= 3 and keep.sum() < len(ts):
                    slope, intercept = np.polyfit(k[keep], ts[keep], 1)
                self.period = float(slope)
                self.locked = True
                self.beat_time = float(intercept + slope * k[-1])
        else:
            self.beat_time = float(ts[-1])
        self.bpm = 60.0 / self.period
        self._next = self.beat_time + self.period
        t_now = self.times[-1]
        while self._next < t_now - 0.25 * self.period:
            self._next += self.period

    def beats_between(self, t0: float, t1: float) -> list[float]:
        """The fitted grid's beats in [t0, t1) (empty until locked)."""
        if self.beat_time is None or self.period <= 0:
            return []
        k0 = np.ceil((t0 - self.beat_time) / self.period)
        out = []
        b = self.beat_time + k0 * self.period
        while b < t1:
            out.append(float(b))
            b += self.period
        return out


def _alternates(env: np.ndarray, lag: int) -> bool:
    """Whether the envelope folded at twice ``lag`` has one strong peak and one weak one half a cycle away
    (a kick and an off-beat, not two beats)."""
    n = len(env) // (2 * lag) * (2 * lag)
    if n < 4 * lag:
        return False
    fold = env[-n:].reshape(-1, 2 * lag).mean(axis=0)
    fold = fold - fold.min()
    first = int(np.argmax(fold))
    second = fold[(first + lag - 2) % (2 * lag):(first + lag - 2) % (2 * lag) + 5].max() if \
        (first + lag + 3) <= 2 * lag or first + lag - 2 >= 0 else 0.0
    second = max(fold[(first + lag + d) % (2 * lag)] for d in range(-2, 3))
    return bool(second < 0.5 * fold[first])


def _peak(acf: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The ACF at ``idx`` or a hop either side, whichever is highest (periods fall between hops)."""
    n = len(acf) - 1
    return np.maximum(np.maximum(acf[np.clip(idx - 1, 0, n)], acf[idx]), acf[np.clip(idx + 1, 0, n)])


def _refine(acf: np.ndarray, lag: int) -> float:
    """The lag of the ACF's local peak near ``lag``, between hops by parabolic interpolation."""
    lo, hi = max(1, lag - 2), min(len(acf) - 2, lag + 2)
    m = lo + int(np.argmax(acf[lo:hi + 1]))
    a, b, c = acf[m - 1], acf[m], acf[m + 1]
    denom = a - 2 * b + c
    return m + (0.5 * (a - c) / denom if denom != 0 else 0.0)


def decode_audio(path: str | Path, rate: int = RATE) -> np.ndarray:
    """A file's audio as mono float32 at ``rate``; MediaError when it has none."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-vn", "-ac", "1",
                           "-ar", str(rate), "-f", "f32le", "pipe:1"], capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        raise MediaError(f"{Path(path).name}: no readable audio")
    return np.frombuffer(proc.stdout, np.float32)


def analyze_track(samples: np.ndarray, fps: float = 100.0) -> dict:
    """The whole track, causally, as the live input would see it: per video-rate step the features, and the
    tracker's beats. Returns ``{"bpm", "beats", "times", "features"}`` (features: name -> array)."""
    a = Analyzer()
    step = RATE / fps
    rows, times = [], []
    beats: list[float] = []
    last_beat = -1.0
    for i in range(int(len(samples) / step)):
        a.feed(samples[int(i * step):int((i + 1) * step)])
        f = a.read()
        rows.append(f)
        times.append(a.time)
        for b in a.tracker.beats_between(max(last_beat + 1e-3, a.time - 1.0), a.time + 1e-9):
            if not beats or b - beats[-1] > 0.5 * a.tracker.period:
                beats.append(round(b, 4))
                last_beat = b
    features = {k: np.array([getattr(r, k) for r in rows], float) for k in (*FEATURES, *ONSETS)}
    features["chroma"] = np.array([r.chroma for r in rows], float)
    return {"bpm": round(a.tracker.bpm, 2), "beats": beats, "times": np.array(times), "features": features}


class AudioFileInput:
    """The block of a track under each video frame: frame i gets samples [i, i+1) / fps, analysed in order."""

    def __init__(self, path: str | Path, fps: float, gain: float = 1.0):
        self.path = Path(path)
        self.samples = decode_audio(path)
        self.fps = fps
        self.analyzer = Analyzer(gain=gain)
        self.next_frame = 0

    @property
    def seconds(self) -> float:
        return len(self.samples) / RATE

    def read(self, frame_index: int) -> Frame:
        """The analysis up to the end of video frame ``frame_index`` (every block up to it, once each)."""
        while self.next_frame <= frame_index:
            a = int(self.next_frame * RATE / self.fps)
            b = int((self.next_frame + 1) * RATE / self.fps)
            self.analyzer.feed(self.samples[a:b])
            self.next_frame += 1
        return self.analyzer.read()

    def now(self) -> float:
        """The input's own time of the last analysed sample (the tracker's beat times are on this line)."""
        return self.analyzer.time

    def close(self) -> None:
        pass


class AudioDeviceInput:
    """A live input (microphone, line in, loopback device) analysed on the audio thread."""

    def __init__(self, device: str | None = None, gain: float = 1.0):
        try:
            import sounddevice
        except ImportError:
            raise ValueError("live audio input needs sounddevice: pip install 'reframe-vj[audio]'") from None
        self.analyzer = Analyzer(gain=gain)
        self._lock = threading.Lock()
        self._clock = None
        try:
            self.stream = sounddevice.InputStream(device=device or None, channels=1, samplerate=RATE,
                                                  blocksize=HOP, callback=self._callback)
            self.stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudio errors come in many types
            raise ValueError(f"audio input {device or 'default'}: {exc}".splitlines()[0]) from None

    def _callback(self, data, frames, time_info, status) -> None:
        import time

        with self._lock:
            self.analyzer.feed(data[:, 0].copy())
            self._clock = (time.perf_counter(), self.analyzer.time)

    def read(self, frame_index: int) -> Frame:
        with self._lock:
            return self.analyzer.read()

    def now(self) -> float:
        import time

        with self._lock:
            if self._clock is None:
                return 0.0
            wall, t = self._clock
            return t + (time.perf_counter() - wall)

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()
