"""Training settings: commented defaults, then a genre preset (TOML), then command-line flags."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from vj.config import build, read_toml

SIZES = (64, 96, 128)
# keys that fix the networks' shapes: on resume they come from the checkpoint, never from flags
SHAPE_KEYS = ("size", "nz", "ngf", "ndf")


@dataclass(frozen=True)
class TrainConfig:
    genre: str = ""              # the genre's name: runs/gan/<genre>/
    videos: str = ""             # folder of the genre's loops (a preset may name it)
    size: int = 64               # output side in pixels: 64, 96 (the seed's) or 128
    epochs: int = 25             # total epochs; a resumed run trains only the missing ones
    hours: float = 0.0           # stop after this many hours (0: no limit); shared across a queue
    until: str = ""              # stop at this local time, "HH:MM" (tomorrow if already past)
    batch: int = 64              # images per step (per process under torchrun)
    fps: float = 10.0            # frames sampled per second of video into the cache (the seed used 30)
    crop: str = "center"         # center (the seed's), letterbox, stretch or face
    dedupe: float = 1.0          # drop a frame whose mean |difference| to the last kept one is below this (0-255; 0 keeps all)
    nz: int = 100                # latent size
    ngf: int = 64                # generator width
    ndf: int = 64                # discriminator width
    lr: float = 2e-4             # Adam learning rate for both networks (Radford et al.)
    beta1: float = 0.5           # Adam beta1 (Radford et al.)
    augment: str = ""            # DiffAugment policy applied to real and fake: any of color,translation,cutout
    samples_per_epoch: int = 1   # renders of the fixed latents per epoch (more: longer clips from short runs)
    n_fixed: int = 64            # size of the fixed latent batch (the grid shows them all)
    singles: int = 4             # how many fixed latents also get their own single-frame sample track
    seed: int = 0                # seeds weights, data order, noise and augmentation
    device: str = "auto"         # auto, cpu, cuda or mps
    compile: bool = False        # torch.compile the networks (checked first; on a GPU the CUDA graph is faster)
    cuda_graph: bool = True      # on one GPU: capture the whole training step once, then replay it (no launch overhead)
    ckpt_minutes: float = 5.0    # checkpoint this often (minutes, mid-epoch too), and when the run ends or stops

    def validate(self) -> "TrainConfig":
        if self.size not in SIZES:
            raise ValueError(f"size {self.size} is not one of {SIZES}")
        if self.batch < 1 or self.epochs < 0 or self.samples_per_epoch < 1:
            raise ValueError("batch and samples_per_epoch must be >= 1 and epochs >= 0")
        bad = set(filter(None, self.augment.split(","))) - {"color", "translation", "cutout"}
        if bad:
            raise ValueError(f"augment {sorted(bad)[0]!r} is not one of color, translation, cutout")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def load_preset(path: str | Path) -> TrainConfig:
    return build(TrainConfig, read_toml(path), where=str(path))
