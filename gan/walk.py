"""Latent walks: seamless loops through a generator's latent space by spherical interpolation.

``LatentWalk`` is a pure function of time, so the live generator layer (any frame rate) and the
offline render (fixed steps) show the same image at the same time.
"""
from __future__ import annotations

import copy
import logging

import numpy as np
import torch

from gan.fastgan import Noise, bake
from gan.model import ModulatedBatchNorm, ResizeConv
from vj.core.onnx import CpuSession, export_onnx

log = logging.getLogger("vj")


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latent batches ``a`` and ``b`` (..., nz); falls back to lerp when parallel."""
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    t = torch.as_tensor(t, dtype=a.dtype)
    lerp = (1 - t) * a + t * b
    out = (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b
    return torch.where(so.abs() < 1e-6, lerp, out)


class LatentWalk:
    """A loop through ``keys`` random latents, ``seconds_per_key`` each; z(t) has period keys*seconds_per_key."""

    def __init__(self, nz: int, keys: int = 8, seconds_per_key: float = 2.0, seed: int = 0, smooth: float = 1.0):
        self.keys = torch.randn(keys, nz, generator=torch.Generator().manual_seed(seed))
        self.seconds_per_key = seconds_per_key
        self.smooth = smooth  # 0: constant speed, 1: ease in/out at each key

    @property
    def period(self) -> float:
        return len(self.keys) * self.seconds_per_key

    def __call__(self, t: float, jitter: float = 0.0, seed: int = 0) -> torch.Tensor:
        pos = (t / self.seconds_per_key) % len(self.keys)
        k = int(pos)
        frac = pos - k
        eased = frac * frac * (3 - 2 * frac)
        frac = (1 - self.smooth) * frac + self.smooth * eased
        z = slerp(self.keys[k], self.keys[(k + 1) % len(self.keys)], frac)
        if jitter > 0:  # deterministic per (seed, frame time): same offline and live
            g = torch.Generator().manual_seed(seed * 1_000_003 + int(t * 1000))
            z = z + jitter * torch.randn(z.shape, generator=g)
        return z


class BatchStatsRenderer:
    """Runs a generator the way its training samples were made: BatchNorm on batch statistics.

    DCGAN generators drift to grey in eval mode when the running averages are young. With a reference
    batch (the run's fixed noise), the BatchNorm statistics of that batch are measured once, on a private
    copy of the generator, and every later latent is rendered in eval mode with them: one image costs one
    image's forward pass (not a whole reference batch's), and the fixed reference means no flicker.
    ``size`` 0: no reference; a batch is normalised by its own statistics (how training renders samples),
    the generator's running averages untouched.

    Frozen on the CPU, each BatchNorm is folded into the transposed convolution before it (an exact
    rewrite: eval-mode BatchNorm is a per-channel scale and shift) and the network runs on ONNX Runtime
    (``vj.core.onnx``): 2.3x eager torch at 64 px, 1.8x at 96 px, one image on one thread (the live layer),
    the same images to float rounding. ``runtime="auto"`` (the default) sends single images there and
    batches to torch, whose oneDNN kernels are faster from 16 images on two threads (1.2 vs 1.4 ms an image
    at 64 px); ``"onnx"`` sends everything there, ``"torch"`` nothing (and skips the 0.5 s export).
    """

    def __init__(self, generator, reference: torch.Tensor | None = None, size: int = 64, seed: int = 0,
                 runtime: str = "auto"):
        if runtime not in ("auto", "torch", "onnx"):
            raise ValueError(f"runtime {runtime!r} is not one of auto, torch, onnx")
        self.device = next(generator.parameters()).device
        self.G = generator
        self.frozen = size > 0
        self.runtime = "torch"  # "onnx" once a session runs (single images, or all with runtime="onnx")
        self._session = None
        if not self.frozen:
            self.bns = [m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
            return
        if reference is None:
            reference = torch.randn(size, generator.nz, generator=torch.Generator().manual_seed(seed))
        self.G = copy.deepcopy(generator)
        bns = [m for m in self.G.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
        self.G.train()
        with torch.no_grad():
            self.G(reference[:size].to(self.device))
        self.G.eval()
        self._batches_on_session = runtime == "onnx"
        if runtime == "onnx" or (runtime == "auto" and self.device.type == "cpu"):
            try:
                folded = fold_batchnorm(self.G)
                self._session = CpuSession(export_onnx(folded, torch.zeros(1, generator.nz), "z", "images"),
                                           torch.get_num_threads())
                self.runtime = "onnx"
            except Exception as exc:  # noqa: BLE001 - onnxruntime missing, or a generator that does not export
                if runtime == "onnx":
                    raise
                # said, not hidden: torch eager is several times slower for one image (a live layer's rate)
                log.warning("generator: runs on torch, not ONNX Runtime (%s: %s)", type(exc).__name__,
                            (str(exc).splitlines() or ["?"])[0][:120])

    @torch.no_grad()
    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """(B, nz) -> (B, 3, S, S) in [-1, 1]."""
        if self._session is not None and (z.shape[0] == 1 or self._batches_on_session):
            return torch.from_numpy(self._session(z.reshape(z.shape[0], -1).cpu().numpy()))
        if self.frozen:
            return self.G(z.to(self.device))
        saved = [(m.training, m.momentum) for m in self.bns]
        for m in self.bns:
            m.train()
            m.momentum = 0.0
        try:
            return self.G(z.to(self.device))
        finally:
            for m, (training, momentum) in zip(self.bns, saved):
                m.train(training)
                m.momentum = momentum


def fold_batchnorm(generator: torch.nn.Module) -> torch.nn.Module:
    """A copy of an eval-mode generator with every convolution followed by BatchNorm (a ``ConvTranspose2d``,
    a ``ResizeConv`` as the transposed one it is, or a ``Conv2d``, in DCGAN and FastGAN; FastGAN's fixed eval
    noise may sit between them) as one biased convolution: w' = w * s per output channel,
    b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps); the noise between them is scaled by s per channel.
    An exact rewrite: eval-mode BatchNorm is a per-channel scale and shift. A ``ModulatedBatchNorm`` keeps its
    latent-set scale and shift after the folded convolution (its BatchNorm has none of its own: gamma 1,
    beta 0). Spectral normalisation is baked into the weights first."""
    folded = bake(copy.deepcopy(generator).eval())
    convs = (torch.nn.ConvTranspose2d, torch.nn.Conv2d)
    for seq in [m for m in folded.modules() if isinstance(m, torch.nn.Sequential)]:
        mods = [p for m in seq for p in (m.plain_layers() if isinstance(m, ResizeConv) else [m])]  # as they are
        out: list[torch.nn.Module] = []
        i = 0
        while i < len(mods):
            m = mods[i]
            noise = mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], Noise) else None
            j = i + (2 if noise is not None else 1)
            after = mods[j] if j < len(mods) else None
            modulated = after if isinstance(after, ModulatedBatchNorm) else None
            bn = modulated.bn if modulated is not None else after
            if isinstance(m, convs) and isinstance(bn, torch.nn.BatchNorm2d) and m.groups == 1:
                gamma, beta = (bn.weight, bn.bias) if bn.affine else (1.0, 0.0)
                s = gamma / torch.sqrt(bn.running_var + bn.eps)
                kind = torch.nn.ConvTranspose2d if isinstance(m, torch.nn.ConvTranspose2d) else torch.nn.Conv2d
                extra = {"output_padding": m.output_padding} if kind is torch.nn.ConvTranspose2d else {}
                conv = kind(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, bias=True,
                            dilation=m.dilation, **extra)
                with torch.no_grad():
                    shape = (1, -1, 1, 1) if kind is torch.nn.ConvTranspose2d else (-1, 1, 1, 1)
                    conv.weight.copy_(m.weight * s.view(*shape))
                    bias = m.bias if m.bias is not None else torch.zeros_like(s)
                    conv.bias.copy_((bias - bn.running_mean) * s + beta)
                out.append(conv.eval())
                if noise is not None:
                    scaled = copy.deepcopy(noise)
                    scaled.weight = torch.nn.Parameter((noise.weight * s).view(1, -1, 1, 1).detach())
                    out.append(scaled.eval())
                if modulated is not None:  # the latent's scale and shift stay, after the folded normalisation
                    modulated.bn = torch.nn.Identity()
                    out.append(modulated.eval())
                i = j + 1
            else:
                out.append(m)
                i += 1
        seq._modules.clear()
        for k, m in enumerate(out):
            seq.add_module(str(k), m)
    if any(isinstance(m, Noise) for m in folded.modules()):
        # FastGAN's eval noise is drawn at its first eval call: here, not inside an ONNX export's trace (which
        # cannot record a seeded draw, and the layer fell back to torch eager)
        with torch.no_grad():
            folded(torch.zeros(1, folded.nz, device=next(folded.parameters()).device))
    return folded


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def walk_frames(generator, seconds: float, fps: float, keys: int = 8, seed: int = 0, batch: int = 16,
                reference: torch.Tensor | None = None):
    """Yield (S, S, 3) uint8 frames of one full, seamless loop of ``seconds``."""
    n = max(1, int(round(seconds * fps)))
    walk = LatentWalk(generator.nz, keys=keys, seconds_per_key=seconds / keys, seed=seed)
    render = BatchStatsRenderer(generator, reference, runtime="torch")  # batches: torch is the faster
    for start in range(0, n, batch):
        z = torch.stack([walk(i / fps) for i in range(start, min(n, start + batch))])
        yield from to_uint8(render(z))


def sefa_directions(generator: torch.nn.Module, k: int = 13) -> torch.Tensor:
    """Closed-form semantic directions (Shen & Zhou 2021, "SeFa"): the eigenvectors of A^T A, A the first
    layer's map from the latent, strongest first, as (k, nz) unit vectors. Moving a latent along one changes
    the picture the most for the distance moved."""
    first = next(m for m in generator.modules() if isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.Linear)))
    w = first.weight.detach().float()
    a = w.reshape(w.shape[0], -1) if isinstance(first, torch.nn.ConvTranspose2d) else w.T  # (nz, features)
    vals, vecs = torch.linalg.eigh(a @ a.T)
    order = torch.argsort(vals, descending=True)[:k]
    return vecs[:, order].T.contiguous()


class LatentDance:
    """A live lucid-sonic-dreams: the music moves the latent walk.

      pulse   a kick (or any percussive hit) kicks the latent along the strongest direction: a push of
              speed that decays, so the picture jolts on the hit and settles; hits push back and forth,
              so the latent swings about the walk instead of drifting away
      motion  harmonic energy sets the walk's speed (pads and chords carry it, silence stills it)
      chroma  the 12 pitch classes weight 12 more directions: a chord has a look

    Each takes a depth 0..1 (the layer's parameters); ``step`` is a pure function of its inputs and its
    state, so a render from a track is frame-exact."""

    DECAY = 0.18     # seconds: a kick's push falls to a third in this long
    PULSE = 4.0      # latent units one full hit moves the latent, at depth 1
    CHROMA = 2.0

    def __init__(self, directions: torch.Tensor):
        self.dirs = directions          # (13, nz): [0] pulse, [1:13] chroma
        self.velocity = 0.0             # along dirs[0], latent units a second
        self.position = 0.0
        self.sign = 1.0

    def step(self, dt: float, hit: float, harmonic: float, chroma, pulse: float, motion: float,
             chroma_depth: float) -> tuple[float, torch.Tensor]:
        """(speed factor for the walk, latent offset) after ``dt`` seconds, ``hit`` 0..1 (this frame's
        percussive onset strength), ``harmonic`` 0..1, ``chroma`` 12 weights."""
        if hit > 0:
            self.sign = -self.sign if self.position * self.sign > 0 else self.sign
            self.velocity = self.sign * hit * self.PULSE / self.DECAY
        self.position += self.velocity * dt
        self.velocity *= float(np.exp(-dt / self.DECAY))
        speed = 1.0 + motion * (2.0 * harmonic - 1.0) * 0.9
        offset = (pulse * self.position) * self.dirs[0]
        if chroma_depth > 0:
            c = torch.as_tensor(np.asarray(chroma, np.float32))
            offset = offset + chroma_depth * self.CHROMA * (c / (c.sum() + 1e-6)) @ self.dirs[1:13]
        return speed, offset
