"""The genre models: DCGAN (Radford et al. 2015; the seed's) here, FastGAN in ``gan.fastgan``, and the one
place that builds, loads and exports either by the run's ``arch``.

DCGAN's networks are a stack of stride-2 (de)convolutions around a small base: 4x4 for 64 and 128 px, 6x6
for 96 px (the seed's size), so every size keeps DCGAN's 4x4 kernels, BatchNorm and ReLU/LeakyReLU. The
generator doubles its side with the seed's transposed convolutions (``upsample="deconv"``), or, as the
``cpu`` profile picks, with a nearest-neighbour resize and a 3x3 convolution (``"resize"``; Odena et al.
2016, "Deconvolution and Checkerboard Artifacts"): no checkerboard, and the fine detail the KID curve
rewards; or with bilinear interpolation and a 3x3 convolution (``"bilinear"``), for soft material. Its
BatchNorm has a learned scale and shift per channel (``g_norm="batch"``, the seed's) or one per image that
the latent sets (``"modulated"``, the ``cpu`` profile's). The discriminator keeps its scale with the seed's
BatchNorm (``d_norm="batch"``) or with spectral normalisation (``"spectral"``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from gan import fastgan
from gan.config import D_NORMS, G_NORMS, UPSAMPLES
from vj.core.runs import atomic_write_bytes


def _plan(size: int) -> tuple[int, int]:
    """(base side, number of stride-2 layers) for an output side."""
    for base in (4, 6):
        n, side = 0, base
        while side < size:
            side, n = side * 2, n + 1
        if side == size:
            return base, n
    raise ValueError(f"no DCGAN layout for size {size}")


def _widths(n: int, width: int) -> list[int]:
    """Channel widths from the base outwards: ..., 8w, 4w, 2w, w (capped at 8w)."""
    return [width * min(8, 2 ** (n - 1 - i)) for i in range(n)]


class ResizeConv(nn.Module):
    """A 2x upsampling, then a 3x3 convolution, computed exactly as one transposed stride-2 convolution.

    ``mode="nearest"`` (``upsample="resize"``; Odena et al. 2016: no checkerboard): along each axis output
    pixel 2i sees v0 in[i-1] + (v1 + v2) in[i] and pixel 2i+1 sees (v0 + v1) in[i] + v2 in[i+1], which is the
    transposed 4x4 convolution with kernel [v2, v1 + v2, v0 + v1, v0], borders included.

    ``mode="bilinear"`` (``upsample="bilinear"``): the upsampling interpolates ([1, 3, 3, 1] / 4 per axis,
    the low-pass filter StyleGAN's generators upsample with) and the 3x3 convolution pads by repeating the
    edge. Pixel 2i sees (3 v0 + v1) / 4 in[i-1] + (v0 + 3 v1 + 3 v2) / 4 in[i] + v2 / 4 in[i+1], and 2i+1
    the mirror image: a transposed 6x6 convolution of the edge-padded input. A prior for soft material: in
    4 minutes on the 2-core CPU plasma's KID fell to 0.13 against nearest's 0.26, while sharp edges and
    small dots blurred (tunnel 1.10 against 0.66, particles 0.60 against 0.31), and the 6x6 taps cost
    about a fifth of the steps (scripts/bench/RESULTS.md). So the ``cpu`` profile keeps nearest.

    One transposed convolution gives the two-step form's pictures at a fraction of its cost: on a CPU the
    two-step nearest form made a generator-and-discriminator pass 2.3x as long as DCGAN's own layers (a 3x3
    convolution to 3 channels at the full size is slow), this one 1.15x."""

    TAPS = {"nearest": [[0., 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]],
            "bilinear": [[0., 0, 1], [0, 1, 3], [1, 3, 3], [3, 3, 1], [3, 1, 0], [1, 0, 0]]}

    def __init__(self, c_in: int, c_out: int, mode: str = "nearest"):
        super().__init__()
        if mode not in self.TAPS:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(self.TAPS)}")
        self.mode = mode
        self.conv = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)  # the 3x3 weights: what is trained and saved
        taps = torch.tensor(self.TAPS[mode]) / (4 if mode == "bilinear" else 1)
        self.register_buffer("taps", taps, persistent=False)

    def kernel(self) -> torch.Tensor:
        """(in, out, k, k): the transposed convolution's kernel (k 4 for nearest, 6 for bilinear)."""
        return torch.einsum("ai,bj,ocij->coab", self.taps, self.taps, self.conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "bilinear":  # the edge repeated once, and the transposed convolution crops it again
            return F.conv_transpose2d(F.pad(x, [1, 1, 1, 1], mode="replicate"), self.kernel().to(x.dtype),
                                      self.conv.bias, stride=2, padding=4)
        return F.conv_transpose2d(x, self.kernel().to(x.dtype), self.conv.bias, stride=2, padding=1)

    def plain_layers(self) -> list[nn.Module]:
        """The plain layers this is: a transposed convolution, after an edge pad for bilinear (for folding
        BatchNorm into it, and for ONNX)."""
        k = self.taps.shape[0]
        out = nn.ConvTranspose2d(self.conv.in_channels, self.conv.out_channels, k, 2, 1 if k == 4 else 4,
                                 bias=self.conv.bias is not None).to(self.conv.weight.device)
        with torch.no_grad():
            out.weight.copy_(self.kernel())
            if self.conv.bias is not None:
                out.bias.copy_(self.conv.bias)
        return [out] if self.mode == "nearest" else [nn.ReplicationPad2d(1), out]


def _double(c_in: int, c_out: int, upsample: str) -> nn.Module:
    """One doubling of the generator's side."""
    if upsample == "deconv":
        return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)
    return ResizeConv(c_in, c_out, "nearest" if upsample == "resize" else "bilinear")


class ModulatedBatchNorm(nn.Module):
    """Self-modulated BatchNorm (Chen et al. 2019, "On Self Modulation for Generative Adversarial Networks"):
    BatchNorm without a scale and shift of its own, then a scale and shift per image and channel that a small
    MLP reads from the image's latent. Every layer hears z, not only the 4x4 base the first convolution makes
    of it, so a trait a frame holds throughout (a word's colour, its ground's) is one MLP output away. On the
    2-core CPU it took typography's KID after 4 minutes to 0.30 (BatchNorm: 0.40-0.45, with white outline
    letters where the frames have coloured ones; scripts/bench/RESULTS.md). The MLP's last layer starts at
    zero: the untrained generator is the BatchNorm one with unit scale. ``Generator`` hands it z."""

    def __init__(self, channels: int, nz: int, hidden: int = 32):
        super().__init__()
        self.bn: nn.Module = nn.BatchNorm2d(channels, affine=False)  # nn.Identity once folded (gan.walk)
        self.mlp = nn.Sequential(nn.Linear(nz, hidden), nn.ReLU(True), nn.Linear(hidden, 2 * channels))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gain, shift = self.mlp(z)[:, :, None, None].chunk(2, dim=1)
        return self.bn(x) * (1 + gain) + shift


class Generator(nn.Module):
    def __init__(self, size: int = 64, nz: int = 100, ngf: int = 64, upsample: str = "deconv", norm: str = "batch"):
        super().__init__()
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample {upsample!r} is not one of {', '.join(UPSAMPLES)}")
        if norm not in G_NORMS:
            raise ValueError(f"norm {norm!r} is not one of {', '.join(G_NORMS)}")
        base, n = _plan(size)
        widths = _widths(n, ngf)

        def bn(channels: int) -> nn.Module:
            return ModulatedBatchNorm(channels, nz) if norm == "modulated" else nn.BatchNorm2d(channels)

        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, widths[0], base, 1, 0, bias=False), bn(widths[0]),
                                   nn.ReLU(True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [_double(c_in, c_out, upsample), bn(c_out), nn.ReLU(True)]
        layers += [_double(widths[-1], 3, upsample), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.size, self.nz, self.modulated = size, nz, norm == "modulated"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # (B, nz) or (B, nz, 1, 1) -> (B, 3, size, size) in [-1, 1]
        x = z.view(z.shape[0], -1, 1, 1)
        if not self.modulated:
            return self.net(x)
        flat = x.flatten(1)
        for layer in self.net:
            x = layer(x, flat) if isinstance(layer, ModulatedBatchNorm) else layer(x)
        return x


class Discriminator(nn.Module):
    """DCGAN's discriminator. ``norm="batch"`` (the seed's, and the profiles'): BatchNorm after every
    convolution but the first and the last. Real and fake images go through D in separate calls, so each
    batch's statistics also tell D which kind it holds (likely why colour fields learn faster with it).
    ``norm="spectral"``: no BatchNorm; every convolution's weight is divided by its largest singular value
    (Miyato et al. 2018, one power iteration a call), and D judges each image alone. With the seed's
    generator, in 4 minutes on the 2-core CPU, typography's KID ended at 0.35-0.37 against BatchNorm's
    0.40-0.45, and every other genre measured higher or no lower: plasma 0.53 against 0.26, tunnel 0.88
    against 0.66, particles 0.39 against 0.31, life 0.17 against 0.09-0.12, mandelbrot 0.26 against 0.18-0.29.
    With the ``cpu`` profile's modulated generator typography ends higher with it too: 0.40 against 0.30
    (scripts/bench/RESULTS.md)."""

    def __init__(self, size: int = 64, ndf: int = 64, norm: str = "batch"):
        super().__init__()
        if norm not in D_NORMS:
            raise ValueError(f"norm {norm!r} is not one of {', '.join(D_NORMS)}")
        base, n = _plan(size)
        widths = _widths(n, ndf)[::-1]  # w, 2w, 4w, 8w ...

        def conv(*args) -> nn.Module:
            c = nn.Conv2d(*args, bias=False)
            return parametrizations.spectral_norm(c) if norm == "spectral" else c

        layers: list[nn.Module] = [conv(3, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [conv(c_in, c_out, 4, 2, 1), *([nn.BatchNorm2d(c_out)] if norm == "batch" else []),
                       nn.LeakyReLU(0.2, True)]
        layers += [conv(widths[-1], 1, base, 1, 0)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 3, size, size) -> (B,) logits
        return self.net(x).view(-1)


def init_weights(module: nn.Module) -> None:
    """DCGAN's init, which FastGAN's paper keeps: conv weights N(0, 0.02) (a spectrally normalised one's raw
    weight), BatchNorm weights N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        w = module.parametrizations.weight.original if parametrize.is_parametrized(module, "weight") else module.weight
        nn.init.normal_(w, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_networks(cfg) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a training config (``arch``, ``size``, ``nz``, ``ngf``, ``ndf``), freshly initialised."""
    if getattr(cfg, "arch", "dcgan") == "fastgan":
        G, D = fastgan.Generator(cfg.size, cfg.nz, cfg.ngf), fastgan.Discriminator(cfg.size, cfg.ndf)
    else:
        G = Generator(cfg.size, cfg.nz, cfg.ngf, cfg.upsample, cfg.g_norm)
        D = Discriminator(cfg.size, cfg.ndf, cfg.d_norm)
    G.apply(init_weights)
    D.apply(init_weights)
    return G, D


def generator_of(cfg: dict) -> nn.Module:
    """An (uninitialised) generator of the shape a checkpoint's ``cfg`` names."""
    if cfg.get("arch", "dcgan") == "fastgan":
        return fastgan.Generator(cfg["size"], cfg["nz"], cfg["ngf"])
    return Generator(cfg["size"], cfg["nz"], cfg["ngf"], cfg.get("upsample", "deconv"),  # older runs: the seed's
                     cfg.get("g_norm", "batch"))


def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA, else Apple's MPS, else the CPU) or a device by name (cpu, cuda, cuda:N, mps), refused in
    one line where this machine has none (training, walks and the live layer alike)."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device (auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not mps:
        raise ValueError(f"--device {name}: no Apple GPU (MPS) is available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {name}: not one of auto, cpu, cuda, cuda:N or mps")
    return device


def _why(exc: BaseException) -> str:
    """The error's kind and its first sentence, short (torch's are paragraphs)."""
    first = (str(exc).splitlines() or ["damaged"])[0].split(". ")[0].rstrip(".")
    return f"{type(exc).__name__}: {first if len(first) <= 100 else first[:99] + '...'}"


def load_checkpoint(path) -> dict:
    """A run's ``ckpt.pt`` or an exported generator, loaded with ``weights_only=True``; one line naming the
    file and what is wrong with it otherwise (missing, truncated, foreign, rejected by the unpickler)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise ValueError(f"{path}: not a readable checkpoint ({_why(exc)})") from None


def load_generator(path, device: str | torch.device = "cpu",
                   ckpt: dict | None = None) -> tuple[nn.Module, torch.Tensor]:
    """A trained generator in eval mode and the run's fixed latent batch, from a run's ``ckpt.pt`` or from
    a file ``vj gan export`` wrote (the generator alone, possibly float16), or from ``ckpt``, that file
    already loaded. A run's averaged weights (``G_ema``) are the ones shown, with spectral normalisation
    baked in. One line naming the file when it is neither."""
    ckpt = load_checkpoint(path) if ckpt is None else ckpt
    try:
        g = generator_of(ckpt["cfg"])
        weights = ckpt.get("G_ema") or ckpt["G"]
        g.load_state_dict({k: v.float() for k, v in weights.items()})
    except Exception as exc:  # noqa: BLE001 - a foreign file, or weights of another shape
        raise ValueError(f"{path}: not a generator checkpoint ({_why(exc)})") from None
    if ckpt["cfg"].get("arch", "dcgan") == "fastgan":
        fastgan.bake(g)
    return g.to(device).eval(), ckpt["fixed_noise"].float()


def export_generator(ckpt_path, out, half: bool = True) -> tuple[int, int, str]:
    """Write the generator of a checkpoint alone (``{G, cfg, fixed_noise}``, loadable with
    ``weights_only=True``); float16 when every weight survives the round trip closely (a DCGAN's do).
    Returns (checkpoint bytes, exported bytes, dtype)."""
    import io
    from pathlib import Path

    ckpt = load_checkpoint(ckpt_path)
    weights = ckpt.get("G_ema") or ckpt["G"]
    dtype = torch.float32
    if half:
        # error against each tensor's scale; a tensor of near-zeros (a young BatchNorm bias) is measured
        # against 0.01: its float16 subnormals are off by 1e-8, which no image shows
        err = max(((v.half().float() - v).abs().max() / v.abs().max().clamp_min(1e-2)).item()
                  for v in weights.values() if v.is_floating_point() and v.numel())
        ok = all(v.abs().max() < 60000 for v in weights.values() if v.is_floating_point())
        dtype = torch.float16 if ok and err < 1e-3 else torch.float32
    state = {"G": {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()},
             "cfg": ckpt["cfg"], "fixed_noise": ckpt["fixed_noise"], "exported": True}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(Path(out), buf.getvalue())
    return Path(ckpt_path).stat().st_size, len(buf.getvalue()), str(dtype).replace("torch.", "")
