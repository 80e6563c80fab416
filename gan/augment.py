"""Differentiable augmentation (Zhao et al. 2020, "DiffAugment") for small genre datasets.

Applied to real and fake images alike before D, so D cannot memorise 10-30 loops while G still gets
gradients through the augmentation. All randomness comes from torch's RNG (resumable).

Some ops help one genre and hurt another: colour jitter is what plasma and tunnel need (D memorises their
few palettes) and what particles suffer from (D, blind to the palette, stops teaching it). An op named
``adaptive`` applies to each image with a probability p that follows D's overfitting, as ADA does (Karras et
al. 2020, "Training Generative Adversarial Networks with Limited Data"): p rises while the mean sign of D's
logits on the real images is above ADA_TARGET (D calls over 80% of them real) and falls otherwise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean  # saturation
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean  # contrast


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    ty = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    gb, gx, gy = torch.meshgrid(torch.arange(b, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[gb, gx, gy].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """A (ratio h) x (ratio w) square of each image set to 0, clipped at the borders. The mask is made by
    comparisons, not an indexed write of a host scalar, so the step can be captured as a CUDA graph."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, h + (1 - ch % 2), (b, 1), device=x.device) - ch // 2
    oy = torch.randint(0, w + (1 - cw % 2), (b, 1), device=x.device) - cw // 2
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (rows >= ox) & (rows < ox + ch)  # (b, h)
    in_cols = (cols >= oy) & (cols < oy + cw)  # (b, w)
    mask = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * mask.unsqueeze(1).to(x.dtype)


POLICIES = {"color": color, "translation": translation, "cutout": cutout}

ADA_TARGET = 0.6  # ADA's r_t target: above it, D is overfitting the real images
# real images over which p can cross from 0 to 1. ADA's 500,000 suits its 25M-image runs; the 2-core CPU
# sees about 50,000 in 4 minutes, so p crosses its range in about a minute (1,250 steps of 8)
ADA_IMAGES = 10_000
ADA_SMOOTH = 0.25  # the overfitting signal is a running mean over about 4 steps (ADA: the mean of 4 batches)


def diff_augment(x: torch.Tensor, policy: str, p: torch.Tensor | None = None, adaptive: str = "") -> torch.Tensor:
    """``policy``'s ops in order; those also named in ``adaptive`` each apply to an image with probability
    ``p`` (a 0-d tensor on ``x``'s device: no host sync, and a CUDA graph reads its current value)."""
    chance = set(filter(None, adaptive.split(",")))
    for name in filter(None, policy.split(",")):
        if name in chance and p is not None:
            skip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= p
            x = torch.where(skip, x, POLICIES[name](x))
        else:
            x = POLICIES[name](x)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def ada_update(p: torch.Tensor, overfit: torch.Tensor, real_logits: torch.Tensor, images: int) -> None:
    """One step of the adaptive probability, in place on the device: ``overfit`` follows the mean sign of D's
    logits on the step's ``images`` real images (FastGAN's D gives several logits an image), and ``p`` moves
    by images / ADA_IMAGES towards less augmentation while that is under ADA_TARGET, towards more while it is
    over, within [0, 1]."""
    overfit.lerp_(torch.sign(real_logits.detach().float()).mean(), ADA_SMOOTH)
    p.add_(torch.sign(overfit - ADA_TARGET) * (images / ADA_IMAGES)).clamp_(0, 1)
