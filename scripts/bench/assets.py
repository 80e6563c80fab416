"""A benchmark show in a temp dir: two genres of procedural clips, each with a real-size generator checkpoint,
and a built mosaic."""
from __future__ import annotations

import textwrap
from pathlib import Path

from common import procedural_videos


def make_show(root: Path, size: str = "1920x1080", fps: int = 60) -> Path:
    import torch

    from gan.config import TrainConfig
    from gan.model import Generator, init_weights
    from mosaic.pipeline import BuildSettings, build

    videos = procedural_videos(root / "videos")
    cfg = TrainConfig(size=64)
    g = Generator(64, cfg.nz, cfg.ngf)
    g.apply(init_weights)
    torch.save({"G": g.state_dict(), "cfg": cfg.to_dict(), "fixed_noise": torch.randn(16, cfg.nz)},
               root / "ckpt.pt")
    g.apply(init_weights)  # genre b: other weights, the same shape (for genre switches)
    torch.save({"G": g.state_dict(), "cfg": cfg.to_dict(), "fixed_noise": torch.randn(16, cfg.nz)},
               root / "ckpt_b.pt")
    build(list(videos.values()), root / "mosaic", BuildSettings(fps=12, tile=128, grid=(30, 15)))
    scene = root / "scene.toml"
    scene.write_text(textwrap.dedent(f"""
        [output]
        size = "{size}"
        fps = {fps}
        [genre]
        fade = 1.0
        [genres.a]
        clips = ["videos/plasma/*.mp4", "videos/tunnel/*.mp4"]
        generator = "ckpt.pt"
        mosaic = "mosaic"
        [genres.b]
        clips = ["videos/particles/*.mp4", "videos/typography/*.mp4"]
        generator = "ckpt_b.pt"
        mosaic = "mosaic"
        [[layers]]
        name = "mosaic"
        source = "mosaic"
        [[layers]]
        name = "clips1"
        source = "clip"
        blend = "screen"
        opacity = 0.7
        [[layers]]
        name = "clips2"
        source = "clip"
        blend = "add"
        opacity = 0.5
        settings = {{ speed = 0.5 }}
        [[layers]]
        name = "gan"
        source = "generator"
        blend = "lighten"
        opacity = 0.6
        [[effects]]
        type = "rgb_split"
        [[effects]]
        type = "scanlines"
    """))
    return scene
