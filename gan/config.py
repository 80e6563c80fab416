"""Training settings: commented defaults, then a genre preset (TOML), then command-line flags.

A run's ``config.toml`` is the truth of that run: ``--resume`` continues with it. A flag that would change
the model or its data is refused in one line naming the flag and the run's value; a flag that only says
how long or how often (epochs, hours, until, checkpoint interval...) applies and is logged.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from vj.core.config import ConfigError, build, read_toml

log = logging.getLogger("vj")

SIZES = {"dcgan": (64, 96, 128), "fastgan": (128, 256, 512, 1024)}
# keys that fix the networks' shapes: a checkpoint is only ever loaded into these
SHAPE_KEYS = ("arch", "size", "nz", "ngf", "ndf", "upsample", "g_norm", "d_norm")
UPSAMPLES = ("deconv", "resize", "bilinear")  # how DCGAN's generator doubles its side (gan.model builds each)
G_NORMS = ("batch", "modulated")  # how DCGAN's generator scales its features (gan.model builds each)
D_NORMS = ("batch", "spectral")  # how DCGAN's discriminator keeps its scale (gan.model builds each)
DCGAN_ONLY = {"upsample": "deconv", "g_norm": "batch", "d_norm": "batch"}  # DCGAN's settings, their defaults: FastGAN has its own ways
# what a resumed run may change: how long, how often, where; everything else is the run's own
RESUMABLE = ("epochs", "hours", "until", "ckpt_minutes", "samples_per_epoch", "max_samples", "device", "compile",
             "cuda_graph", "precision", "kid_minutes", "kid_epochs", "clip_seconds")

# Profiles: settings that learn on the machine at hand, under a preset's and the command line's values.
# cpu: measured on the 2-core CPU (scripts/bench/gan_quality.py): the stock DCGAN settings (batch 64, width
# 64, lr 2e-4, no augmentation) gave grey static after 25 epochs (D wins outright); small batches, narrow
# networks, a higher learning rate, DiffAugment and a generator whose scales the latent sets (self-modulation)
# bring KID to under half its start in 4 minutes on all 6 genres measured; colour jitter is adaptive: it
# fades where D does not overfit (particles' KID 0.69x).
# gpu: FastGAN at 256 px, the paper's widths and batch 8, for one GPU overnight.
PROFILES: dict[str, dict] = {
    "cpu": {"arch": "dcgan", "size": 64, "batch": 8, "ngf": 24, "ndf": 16, "upsample": "resize",
            "g_norm": "modulated", "lr": 8e-4, "fps": 6.0, "augment": "translation,color", "adaptive": "color",
            "kid_minutes": 2.0},
    "gpu": {"arch": "fastgan", "size": 256, "batch": 8, "nz": 256, "ngf": 64, "ndf": 64, "lr": 2e-4,
            "augment": "color,translation,cutout", "kid_minutes": 0.0, "kid_epochs": 5},
}


@dataclass(frozen=True)
class TrainConfig:
    genre: str = ""              # the genre's name: runs/gan/<genre>/
    videos: str = ""             # folder of the genre's loops (a preset may name it)
    profile: str = "auto"        # auto (cpu or gpu by the device), cpu, gpu or none (the defaults below)
    arch: str = "dcgan"          # dcgan (the seed's: 64, 96, 128 px) or fastgan (128, 256, 512, 1024 px, few-shot)
    size: int = 64               # output side in pixels: 64, 96 (the seed's) or 128; FastGAN 128 to 1024
    epochs: int = 25             # total epochs; a resumed run trains only the missing ones; 0: until the deadline
    hours: float = 0.0           # stop after this many hours (0: no limit); shared across a queue
    until: str = ""              # stop at this local time, "HH:MM" (tomorrow if already past)
    batch: int = 64              # images per step (per process under torchrun)
    fps: float = 10.0            # frames sampled per second of video into the cache (the seed used 30)
    crop: str = "center"         # center (the seed's), letterbox, stretch or face
    dedupe: float = 1.0          # drop a frame whose mean |difference| to the last kept one is below this (0-255; 0 keeps all)
    nz: int = 100                # latent size
    ngf: int = 64                # generator width
    ndf: int = 64                # discriminator width
    upsample: str = "deconv"     # DCGAN's generator doubles its side by deconv (the seed's transposed convolutions),
                                 # resize (nearest neighbour, then a 3x3 convolution: no checkerboard) or bilinear
                                 # (interpolation, then a 3x3 convolution: for soft material like plasma; it
                                 # blurs sharp edges and small dots)
    g_norm: str = "batch"        # DCGAN's generator: batch (the seed's BatchNorm, a learned scale and shift per
                                 # channel) or modulated (self-modulation, Chen et al. 2019: each image's scale
                                 # and shift are read from its latent by a small MLP; colours a frame holds
                                 # throughout, like a word's, come sooner)
    d_norm: str = "batch"        # DCGAN's discriminator: batch (the seed's BatchNorm) or spectral (spectral
                                 # normalisation, Miyato et al. 2018, no BatchNorm: each image judged alone;
                                 # crisper type with the seed's generator, no better with a modulated one)
    lr: float = 2e-4             # Adam learning rate for both networks (Radford et al.)
    beta1: float = 0.5           # Adam beta1 (Radford et al.)
    augment: str = ""            # DiffAugment policy applied to real and fake: any of color,translation,cutout
    adaptive: str = ""           # those of augment's ops that apply with a probability following D's overfitting
                                 # (ADA): p rises while D calls over 80% of the real frames real
    samples_per_epoch: int = 1   # renders of the fixed latents per epoch (more: longer clips from short runs)
    max_samples: int = 1800      # samples a run keeps (a minute of learning clip at 30 fps); past it, every 2nd
                                 # epoch's, then every 4th...: evenly spread, the disk bounded (0: keep all)
    n_fixed: int = 64            # size of the fixed latent batch (the grid shows them all)
    singles: int = 4             # how many fixed latents also get their own single-frame sample track
    seed: int = 0                # seeds weights, data order, noise and augmentation
    device: str = "auto"         # auto, cpu, cuda or mps
    compile: bool = False        # torch.compile the networks (checked first; on a GPU the CUDA graph is faster)
    cuda_graph: bool = True      # on one GPU: capture the whole training step once, then replay it (no launch overhead)
    precision: str = "auto"      # auto, fp32 or bf16 (autocast). auto: bf16 on a GPU, and for FastGAN on a CPU
                                 # that computes bfloat16 natively (AVX512-BF16 or AMX); fp32 otherwise
    ckpt_minutes: float = 5.0    # checkpoint this often (minutes, mid-epoch too), and when the run ends or stops
    ema: float = 0.999           # the shown generator averages the trained one's weights (decay per step,
                                 # ramped up from 0.1 over the first steps; 0: off)
    kid_minutes: float = 2.0     # measure the quality curve (KID) every N minutes on a worker (0: off)
    kid_epochs: int = 0          # ... or every K epochs instead (GPU epochs are short); 0: by minutes
    clip_seconds: float = 0.0    # wanted length of the learning clip at 30 fps: sets samples_per_epoch (0: off)

    def validate(self) -> "TrainConfig":
        if self.arch not in SIZES:
            raise ValueError(f"arch {self.arch!r} is not one of {', '.join(SIZES)}")
        if self.size not in SIZES[self.arch]:
            raise ValueError(f"size {self.size} is not one of {self.arch}'s sizes {SIZES[self.arch]}")
        if self.profile not in ("auto", "none", *PROFILES):
            raise ValueError(f"profile {self.profile!r} is not one of auto, none, {', '.join(PROFILES)}")
        checks = [(1 <= self.batch <= 4096, f"batch {self.batch} must be 1-4096"),
                  (0 <= self.epochs <= 10**7, f"epochs {self.epochs} must be 0-10,000,000"),
                  (1 <= self.samples_per_epoch <= 1000, "samples_per_epoch must be 1-1000"),
                  (0 <= self.max_samples <= 10**6, f"max_samples {self.max_samples} must be 0 (keep all) to 1,000,000"),
                  (0 < self.fps <= 120, f"fps {self.fps:g} must be above 0 and at most 120"),
                  (0 <= self.hours <= 24 * 365, f"hours {self.hours:g} must be 0-8760"),
                  (1 <= self.nz <= 4096 and 4 <= self.ngf <= 1024 and 4 <= self.ndf <= 1024, "nz 1-4096, ngf and ndf 4-1024"),
                  (0 < self.lr < 1, f"lr {self.lr:g} must be between 0 and 1"),
                  (1 <= self.n_fixed <= 1024 and 0 <= self.singles <= self.n_fixed, "n_fixed 1-1024, singles <= n_fixed"),
                  (self.ckpt_minutes >= 0, "ckpt_minutes must be 0 (every step) or more"),
                  (self.crop in ("center", "letterbox", "stretch", "face"), f"crop {self.crop!r} is not one of center, "
                                                                              "letterbox, stretch, face"),
                  (self.epochs > 0 or self.hours > 0 or bool(self.until), "epochs 0 needs a deadline (hours or until)"),
                  (0 <= self.ema < 1, "ema must be 0 (off) or more, below 1"),
                  (self.upsample in UPSAMPLES, f"upsample {self.upsample!r} is not one of {', '.join(UPSAMPLES)}"),
                  (self.g_norm in G_NORMS, f"g_norm {self.g_norm!r} is not one of {', '.join(G_NORMS)}"),
                  (self.d_norm in D_NORMS, f"d_norm {self.d_norm!r} is not one of {', '.join(D_NORMS)}"),
                  (self.precision in ("auto", "fp32", "bf16"), f"precision {self.precision!r} is not one of auto, fp32, bf16"),
                  (self.kid_minutes >= 0 and self.kid_epochs >= 0 and self.clip_seconds >= 0,
                   "kid_minutes, kid_epochs and clip_seconds must be 0 or more")]
        for ok, why in checks:
            if not ok:
                raise ValueError(why)
        # the names of gan.augment.POLICIES, spelled here so that settings load without torch (--help, a show)
        ops = set(filter(None, self.augment.split(",")))
        bad = ops - {"color", "translation", "cutout"}
        if bad:
            raise ValueError(f"augment {sorted(bad)[0]!r} is not one of color, translation, cutout")
        bad = set(filter(None, self.adaptive.split(","))) - ops
        if bad:
            raise ValueError(f"adaptive {sorted(bad)[0]!r} is not one of augment's ops ({self.augment or 'none'})")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def preset_values(path: str | Path) -> dict:
    """A genre preset's own values (checked against the settings), for ``settings`` to layer."""
    data = read_toml(path)
    data.pop("kind", None)
    build(TrainConfig, data, where=str(path))  # unknown keys and bad values named now
    return data


def load_preset(path: str | Path) -> TrainConfig:
    return build(TrainConfig, preset_values(path), where=str(path))


def describe_profiles() -> str:
    """One line per profile for ``--help``, from ``PROFILES`` itself."""
    def line(values: dict) -> str:
        parts = [f"{values['arch']} {values['size']} px"]
        parts += [f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()
                  if k not in ("arch", "size", "kid_minutes", "kid_epochs")]
        if values.get("kid_epochs"):
            parts.append(f"KID every {values['kid_epochs']} epochs")
        elif values.get("kid_minutes"):
            parts.append(f"KID every {values['kid_minutes']:g} min")
        return ", ".join(parts)

    return "\n".join([f"  {name:4} {line(values)}" for name, values in PROFILES.items()]
                     + ["  none the plain defaults listed under settings (the seed's DCGAN)",
                        f"  cpu and gpu lower fps for a long library: its frame cache stays under "
                        f"{MAX_CACHE_BYTES / 1e9:g} GB"])


def resolve_profile(profile: str, device: str) -> str:
    """The profile ``auto`` stands for on ``device`` (auto: a CUDA GPU when there is one)."""
    if profile != "auto":
        return profile
    if device == "auto":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    return "gpu" if device == "cuda" else "cpu"


# A long library is sampled sparser, so that its frame cache stays under MAX_CACHE_BYTES (ten hours of loops
# at the gpu profile's 256 px and 10 fps would be 70 GB on the disk, and more than a GPU holds), down to a
# frame every 1 / MIN_FPS seconds. (A short one sampled denser, to at least 200 frames, was measured and not
# taken: scripts/bench/RESULTS.md, seventh session.)
MAX_CACHE_BYTES = 4e9
MIN_FPS = 0.05


def fps_for_data(fps: float, seconds: float, stills: int, size: int) -> float:
    """The profile's frame rate fitted to the library (``seconds`` of video and ``stills`` images, cached at
    ``size`` px): as the profile says, unless the cache would be over MAX_CACHE_BYTES."""
    cap = MAX_CACHE_BYTES // (size * size * 3)
    if seconds <= 0 or seconds * fps + stills <= cap:
        return fps
    return float(f"{max(MIN_FPS, (cap - stills) / seconds):.3g}")


def layered(*layers: dict) -> dict:
    """Settings layered in order, a later layer's values over an earlier one's. A later ``augment`` keeps of
    an earlier ``adaptive`` only the ops it still has (the cpu profile's adaptive colour under a policy
    without colour: none adaptive), and a later FastGAN ``arch`` drops an earlier layer's DCGAN settings (a
    preset's ``upsample`` or ``d_norm`` under ``--arch fastgan``) and a ``size`` that is not one of its own
    (quick-cpu's 64 px: FastGAN's smallest instead), unless the later layer names them itself."""
    out: dict = {}
    for values in layers:
        if "augment" in values and "adaptive" not in values and "adaptive" in out:
            ops = str(values["augment"]).split(",")
            out["adaptive"] = ",".join(op for op in str(out["adaptive"]).split(",") if op in ops)
        if values.get("arch", "dcgan") != "dcgan":
            for key in DCGAN_ONLY.keys() - values.keys():
                out.pop(key, None)
            if "size" in out and "size" not in values and out["size"] not in SIZES.get(values["arch"], (out["size"],)):
                out.pop("size")
        out.update(values)
    return out


def settings(values: dict, where: str = "command line", base: TrainConfig | None = None,
             data: tuple[float, int] | None = None) -> TrainConfig:
    """A new run's settings: the defaults, then the profile's, then ``values`` (a preset's, the flags); what
    the profile chose is logged, and every value the user gave wins over it. ``data``: the library's seconds
    of video and number of stills, which fit the profile's ``fps`` to it (``fps_for_data``)."""
    base = base or TrainConfig()
    profile = resolve_profile(str(values.get("profile", base.profile)), str(values.get("device", base.device)))
    # what the profile decides: its values the user did not give (its adaptive ops kept to the user's augment)
    chosen = {k: v for k, v in layered(PROFILES.get(profile, {}), values).items() if k not in values}
    arch = values.get("arch", chosen.get("arch", base.arch))
    if "size" not in values and arch in SIZES and chosen.get("size", base.size) not in SIZES[arch]:
        chosen["size"] = SIZES[arch][0]  # --arch fastgan on the cpu profile: 128 px, not DCGAN's 64
    if arch == "fastgan":
        for key, default in DCGAN_ONLY.items():
            if values.get(key, default) != default:
                raise ValueError(f"{where}: {key} = {values[key]!r} is DCGAN's setting: FastGAN's networks have "
                                 f"their own (leave {key} out)")
            chosen.pop(key, None)
    shown = {}
    if profile in PROFILES and "fps" not in values and data is not None:
        seconds, stills = data
        was = chosen.get("fps", base.fps)
        fitted = fps_for_data(was, seconds, stills, values.get("size", chosen.get("size", base.size)))
        if fitted != was:
            frames = round(seconds * fitted) + stills
            shown["fps"] = f"{fitted:g} (for {seconds:.0f} s of video: about {frames:,} frames)"
            chosen["fps"] = fitted
    if chosen:
        log.info("%s: profile %s: %s (override any with --set KEY=VALUE)", values.get("genre", base.genre) or "run",
                 profile, ", ".join(f"{k}={shown.get(k, v)}" for k, v in chosen.items()))
    return build(TrainConfig, {**chosen, **values, "profile": profile}, where=where, base=base).validate()


def with_clip_length(cfg: TrainConfig) -> TrainConfig:
    """``clip_seconds``: enough samples per epoch for a learning clip that long at 30 fps (known epochs)."""
    if cfg.clip_seconds <= 0 or cfg.epochs <= 0:
        return cfg
    per_epoch = max(1, min(1000, math.ceil(cfg.clip_seconds * 30 / cfg.epochs)))
    keep = cfg.max_samples and max(cfg.max_samples, per_epoch * cfg.epochs)  # the clip's samples all stay
    return replace(cfg, samples_per_epoch=per_epoch, max_samples=keep)


def load_run_config(path: Path) -> TrainConfig:
    """A run's ``config.toml``, as the run was started (keys of older versions are dropped)."""
    data = read_toml(path)
    known = {f.name for f in fields(TrainConfig)}
    return build(TrainConfig, {k: v for k, v in data.items() if k in known}, where=str(path))


def resume_config(run_config: TrainConfig, flags: dict[str, Any], where: str) -> TrainConfig:
    """The run's settings with the flags it may take; a flag that would change the model or its data is
    refused, naming the flag and the run's value."""
    new = build(TrainConfig, flags, where="command line", base=run_config)
    for key in flags:
        old, value = getattr(run_config, key), getattr(new, key)
        if old == value:
            continue
        if key not in RESUMABLE:
            shown = repr(value) if value == "" else value  # --set adaptive= : an empty value, said as ''
            raise ConfigError(f"--{key.replace('_', '-')} {shown}: this run was trained with {key} = {old!r} "
                              f"({where}); drop the flag to resume it, or start a new run with another --genre")
        log.info("%s: resuming with %s = %r (was %r)", run_config.genre, key, value, old)
    return replace(new).validate()
