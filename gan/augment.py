"""Differentiable augmentation (Zhao et al. 2020, "DiffAugment") for small genre datasets.

Applied to real and fake images alike before D, so D cannot memorise 10-30 loops while G still gets
gradients through the augmentation. All randomness comes from torch's RNG (resumable).
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


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    for name in filter(None, policy.split(",")):
        x = POLICIES[name](x)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
