"""FastGAN (Liu et al., ICLR 2021): high resolution from a few hundred images on one GPU overnight.

The generator grows a 4x4 seed through upsampling blocks (nearest, conv, BatchNorm, GLU; noise in every
other block) to 128-1024 px, and skip-layer excitation (SE) lets the small feature maps gate the large
ones channel by channel. The discriminator is self-supervised: besides real/fake logits at two scales it
decodes its own features back into the whole image and into a random quarter of it (at 128 px), so it must
learn features that describe the image, not just separate real from fake: no collapse on tiny data.
Hinge loss; DiffAugment on real and fake alike (``gan.augment``).

Widths follow the paper's table, times ``ngf`` / ``ndf`` (64 in the paper; the CPU profile uses less).
Spectral normalisation on every convolution; at export it is baked into the weights (``bake``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize

SIZES = (128, 256, 512, 1024)
G_WIDTH = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
D_WIDTH = {4: 16, 8: 16, 16: 8, 32: 4, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}


def conv(*args, **kw) -> nn.Module:
    return parametrizations.spectral_norm(nn.Conv2d(*args, **kw))


def tconv(*args, **kw) -> nn.Module:
    return parametrizations.spectral_norm(nn.ConvTranspose2d(*args, **kw))


class GLU(nn.Module):
    def forward(self, x):
        n = x.shape[1] // 2
        return x[:, :n] * torch.sigmoid(x[:, n:])


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class Noise(nn.Module):
    """Per-pixel noise times a learned weight. Training draws new noise every call (torch's RNG, so a
    resumed run draws the same); in eval mode a fixed noise is used, so a latent walk does not flicker and
    the network exports without random operators."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self._fixed: torch.Tensor | None = None  # eval noise, made from its own seed when first needed

    def forward(self, x):
        b, _, h, w = x.shape
        if self.training:
            noise = torch.randn(b, 1, h, w, device=x.device, dtype=x.dtype)
        else:
            if self._fixed is None or self._fixed.shape[2:] != (h, w) or self._fixed.device != x.device:
                seeded = torch.Generator().manual_seed(7 * h + w)  # never the global random state
                self._fixed = torch.randn(1, 1, h, w, generator=seeded).to(x.device)
            noise = self._fixed.to(x.dtype)
        return x + self.weight * noise


def up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv(c_in, c_out * 2, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(c_out * 2), GLU())


def up_comp(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv(c_in, c_out * 2, 3, 1, 1, bias=False),
                         Noise(), nn.BatchNorm2d(c_out * 2), GLU(), conv(c_out, c_out * 2, 3, 1, 1, bias=False),
                         Noise(), nn.BatchNorm2d(c_out * 2), GLU())


class SE(nn.Module):
    """Skip-layer excitation: a small map's pooled features gate a large map's channels."""

    def __init__(self, c_small: int, c_big: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(4), conv(c_small, c_big, 4, 1, 0, bias=False), Swish(),
                                  conv(c_big, c_big, 1, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, small, big):
        return big * self.gate(small)


class Generator(nn.Module):
    def __init__(self, size: int = 256, nz: int = 256, ngf: int = 64):
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"FastGAN size {size} is not one of {SIZES}")
        c = {k: max(4, int(v * ngf)) for k, v in G_WIDTH.items()}
        self.size, self.nz = size, nz
        self.init = nn.Sequential(tconv(nz, c[4] * 2, 4, 1, 0, bias=False), nn.BatchNorm2d(c[4] * 2), GLU())
        self.feat_8, self.feat_16, self.feat_32 = up_comp(c[4], c[8]), up(c[8], c[16]), up_comp(c[16], c[32])
        self.feat_64, self.feat_128 = up(c[32], c[64]), up_comp(c[64], c[128])
        self.se_64, self.se_128 = SE(c[4], c[64]), SE(c[8], c[128])
        self.to_128 = conv(c[128], 3, 1, 1, 0, bias=False)
        if size >= 256:
            self.feat_256, self.se_256 = up(c[128], c[256]), SE(c[16], c[256])
        if size >= 512:
            self.feat_512, self.se_512 = up_comp(c[256], c[512]), SE(c[32], c[512])
        if size >= 1024:
            self.feat_1024 = up(c[512], c[1024])
        self.to_big = conv(c[size], 3, 3, 1, 1, bias=False)

    def forward(self, z: torch.Tensor, both: bool = False):
        # (B, nz) -> (B, 3, size, size) in [-1, 1]; with ``both`` also the (B, 3, 128, 128) side output
        f4 = self.init(z.view(z.shape[0], -1, 1, 1))
        f8 = self.feat_8(f4)
        f16 = self.feat_16(f8)
        f32 = self.feat_32(f16)
        f64 = self.se_64(f4, self.feat_64(f32))
        f128 = self.se_128(f8, self.feat_128(f64))
        big = f128
        if self.size >= 256:
            big = self.se_256(f16, self.feat_256(f128))
        if self.size >= 512:
            big = self.se_512(f32, self.feat_512(big))
        if self.size >= 1024:
            big = self.feat_1024(big)
        out = torch.tanh(self.to_big(big))
        return (out, torch.tanh(self.to_128(f128))) if both else out


def down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(conv(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True))


class DownComp(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.main = nn.Sequential(down(c_in, c_out), conv(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
                                  nn.LeakyReLU(0.2, True))
        self.direct = nn.Sequential(nn.AvgPool2d(2, 2), conv(c_in, c_out, 1, 1, 0, bias=False), nn.BatchNorm2d(c_out),
                                    nn.LeakyReLU(0.2, True))

    def forward(self, x):
        return (self.main(x) + self.direct(x)) / 2


def decoder(c_in: int, c: dict) -> nn.Sequential:
    """Features -> a 128 px image: the discriminator's self-supervision."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(8), up(c_in, c[16]), up(c[16], c[32]), up(c[32], c[64]),
                         up(c[64], c[128]), conv(c[128], 3, 3, 1, 1, bias=False), nn.Tanh())


class Discriminator(nn.Module):
    def __init__(self, size: int = 256, ndf: int = 64):
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"FastGAN size {size} is not one of {SIZES}")
        c = {k: max(4, int(v * ndf)) for k, v in D_WIDTH.items()}
        self.size = size
        # the big image to a 256 px map (128 px images start one level lower)
        stem = {1024: [conv(3, c[1024], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
                       conv(c[1024], c[512], 4, 2, 1, bias=False), nn.BatchNorm2d(c[512]), nn.LeakyReLU(0.2, True)],
                512: [conv(3, c[512], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)],
                256: [conv(3, c[512], 3, 1, 1, bias=False), nn.LeakyReLU(0.2, True)],
                128: [conv(3, c[256], 3, 1, 1, bias=False), nn.LeakyReLU(0.2, True)]}[size]
        self.stem = nn.Sequential(*stem)
        self.down_4 = DownComp(c[512], c[256]) if size >= 256 else None
        self.down_8, self.down_16 = DownComp(c[256], c[128]), DownComp(c[128], c[64])
        self.down_32, self.down_64 = DownComp(c[64], c[32]), DownComp(c[32], c[16])
        self.se_2_16 = SE(c[512], c[64]) if size >= 256 else None
        self.se_4_32, self.se_8_64 = SE(c[256], c[32]), SE(c[128], c[16])
        self.rf_big = nn.Sequential(conv(c[16], c[8], 1, 1, 0, bias=False), nn.BatchNorm2d(c[8]),
                                    nn.LeakyReLU(0.2, True), conv(c[8], 1, 4, 1, 0, bias=False))
        self.from_small = nn.Sequential(conv(3, c[256], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
                                        down(c[256], c[128]), down(c[128], c[64]), down(c[64], c[32]))
        self.rf_small = conv(c[32], 1, 4, 1, 0, bias=False)
        self.decoder_big, self.decoder_part, self.decoder_small = decoder(c[16], c), decoder(c[32], c), decoder(c[32], c)

    def forward(self, big: torch.Tensor, small: torch.Tensor, part: int | None = None):
        """Logits (B * (n_big + n_small),) for ``big`` (B, 3, size, size) and ``small`` (B, 3, 128, 128);
        with ``part`` (0-3, for real images) also the three reconstructions: whole, small, that quarter."""
        f2 = self.stem(big)
        f4 = self.down_4(f2) if self.down_4 is not None else f2
        f8 = self.down_8(f4)
        f16 = self.down_16(f8)
        if self.se_2_16 is not None:
            f16 = self.se_2_16(f2, f16)
        f32 = self.se_4_32(f4, self.down_32(f16))
        last = self.se_8_64(f8, self.down_64(f32))
        fs = self.from_small(small)
        logits = torch.cat([self.rf_big(last).reshape(-1), self.rf_small(fs).reshape(-1)])
        if part is None:
            return logits
        h = f32.shape[2] // 2
        quarter = f32[:, :, (part // 2) * h:(part // 2 + 1) * h, (part % 2) * h:(part % 2 + 1) * h]
        return logits, (self.decoder_big(last), self.decoder_small(fs), self.decoder_part(quarter))


def quarter_of(images: torch.Tensor, part: int) -> torch.Tensor:
    h = images.shape[2] // 2
    return images[:, :, (part // 2) * h:(part // 2 + 1) * h, (part % 2) * h:(part % 2 + 1) * h]


def reconstruction_loss(recs, real: torch.Tensor, small: torch.Tensor, part: int) -> torch.Tensor:
    """Mean squared error of the discriminator's three 128 px reconstructions (the paper uses LPIPS, whose
    weights would need a download; MSE keeps the project offline)."""
    def at128(x):
        return F.interpolate(x, size=128, mode="bilinear", align_corners=False) if x.shape[2] != 128 else x
    big, sm, quarter = recs
    return (F.mse_loss(big.float(), at128(real).float()) + F.mse_loss(sm.float(), at128(small).float())
            + F.mse_loss(quarter.float(), at128(quarter_of(real, part)).float()))


def bake(net: nn.Module) -> nn.Module:
    """Spectral normalisation folded into plain weights (in place): for export and fast inference."""
    for m in net.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return net
