"""The GAN pipeline on tiny real data: train, samples, exact resume, crash safety, clips, queue, DDP."""
from __future__ import annotations

import json
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import ROOT, run_vj
from gan.config import TrainConfig, load_preset
from gan.data import NoUsableVideo, build_cache
from gan.train import Trainer, train_genre
from gan.model import Generator, init_weights, load_generator
from gan.walk import BatchStatsRenderer, LatentWalk, fold_batchnorm
from vj.core.config import ConfigError
from vj.core.media import count_frames, probe
from vj.core.runs import GanRun

TINY = ["--size", "64", "--batch", "8", "--fps", "8", "--set", "ngf=8", "--set", "ndf=8", "--set", "n_fixed=16",
        "--set", "kid_minutes=0", "--no-progress"]


def tiny_cfg(videos, genre="g", **kw) -> TrainConfig:
    base = TrainConfig(genre=genre, videos=str(videos), size=64, batch=8, fps=8, ngf=8, ndf=8, n_fixed=16,
                       epochs=2, device="cpu", kid_minutes=0)
    return replace(base, **kw)


def state(run_dir):
    return torch.load(run_dir / "ckpt.pt", weights_only=True)


def test_train_writes_samples_checkpoint_log_and_clips(genre_videos, tmp_path):
    runs = tmp_path / "runs"
    proc = run_vj("gan", "train", str(genre_videos["plasma"]), "--genre", "plasma", "--runs", str(runs),
                  "--epochs", "2", "--set", "samples_per_epoch=2", *TINY, check=True)
    run = runs / "gan" / "plasma"
    assert "plasma: done at epoch 2" in proc.stderr
    names = sorted(p.name for p in (run / "samples").glob("epoch_*.png"))
    assert names == ["epoch_00000.png", "epoch_00001-01.png", "epoch_00001.png", "epoch_00002-01.png",
                     "epoch_00002.png"]
    assert len(list((run / "samples" / "z00").glob("*.png"))) == 5
    ckpt = state(run)  # loads with weights_only=True
    assert ckpt["epoch"] == 2 and ckpt["fixed_noise"].shape == (16, 100)
    assert (run / "log.csv").read_text().count("\n") == 3 and (run / "loss.png").stat().st_size > 1000
    assert (run / "config.toml").read_text().count("genre = \"plasma\"") == 1

    run_vj("gan", "clip", "plasma", "--runs", str(runs), "--fps", "24", "--out", str(tmp_path / "c.mp4"), check=True)
    assert count_frames(tmp_path / "c.mp4") == 5  # one frame per recorded sample
    assert probe(tmp_path / "c.mp4").fps == 24
    run_vj("gan", "clip", "plasma", "--runs", str(runs), "--blend", "2", "--height", "128", "--latent", "0",
           "--out", str(tmp_path / "b.mp4"), check=True)
    assert count_frames(tmp_path / "b.mp4") == 5 + 4 * 2 and probe(tmp_path / "b.mp4").height == 128
    run_vj("gan", "walk", "plasma", "--runs", str(runs), "--seconds", "1", "--fps", "12",
           "--out", str(tmp_path / "w.mp4"), check=True)
    assert count_frames(tmp_path / "w.mp4") == 12
    # several genres at once, each into its own clips/; a typo in the last is found before any clip is made
    shutil.copytree(run, runs / "gan" / "plasma2")
    bad = run_vj("gan", "clip", "plasma", "plasma3", "--runs", str(runs))
    assert bad.returncode == 2 and "runs/gan/plasma3: no checkpoint" in bad.stderr and "plasma, plasma2" in bad.stderr
    assert not (run / "clips").exists()
    run_vj("gan", "walk", "plasma", "plasma2", "--runs", str(runs), "--seconds", "1", "--fps", "12", check=True)
    assert [count_frames(runs / "gan" / g / "clips" / "walk.mp4") for g in ("plasma", "plasma2")] == [12, 12]


@pytest.mark.parametrize("g_norm, d_norm", [("batch", "batch"), ("modulated", "spectral")])
def test_resume_after_2_of_4_epochs_equals_4_straight(genre_videos, tmp_path, monkeypatch, g_norm, d_norm):
    import gan.augment

    monkeypatch.setattr(gan.augment, "ADA_TARGET", -1.0)  # p rises at every step: its state must resume too
    straight, split = tmp_path / "a", tmp_path / "b"
    cfg = replace(tiny_cfg(genre_videos["tunnel"]), augment="translation,color", adaptive="color", g_norm=g_norm,
                  d_norm=d_norm)
    train_genre(replace(cfg, epochs=4), straight, progress=False)
    first = train_genre(replace(cfg, epochs=2), split, progress=False)
    assert first.status == "done" and first.epoch == 2
    second = train_genre(replace(cfg, epochs=4), split, resume=True, progress=False)
    assert second.epoch == 4
    a, b = state(straight), state(split)
    assert a["aug"][0] > 0 and torch.equal(a["aug"], b["aug"])  # the adaptive p and D's overfitting signal
    last = dict(zip(*[line.split(",") for line in (straight / "log.csv").read_text().splitlines()[::4]]))
    assert last["epoch"] == "4" and 0 < float(last["aug_p"]) <= float(a["aug"][0])  # the epoch's mean p
    for net in ("G", "D", "G_ema"):  # the shown weight average too
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), (net, key)
    assert any(not torch.equal(a["G"][k], a["G_ema"][k]) for k in a["G"])  # it is an average, not a copy
    assert sorted(p.name for p in (split / "samples").glob("*.png")) == \
        sorted(p.name for p in (straight / "samples").glob("*.png"))


def test_the_weight_average_ramps_up_so_a_short_run_shows_what_it_learned(tmp_path):
    """Step 0 averages with decay 0.1, so after a few steps the shown generator is mostly the trained one
    (with a fixed 0.999 it would still be 99.5% the initial weights after 5 steps)."""
    frames = np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    tr = Trainer(tmp_path, tiny_cfg(tmp_path, ema=0.999), progress=False)
    assert [round(tr.ema_decay(s), 4) for s in (0, 90, 10**6)] == [0.1, 0.91, 0.999]
    start = {k: v.clone() for k, v in tr.G_ema.state_dict().items()}
    for step in range(5):
        before = {k: v.clone() for k, v in tr.G_ema.named_parameters()}
        tr.train_batch(frames, np.arange(8))
        w = 1 - tr.ema_decay(step)
        for k, p in tr.G.named_parameters():  # exactly one lerp at this step's weight
            assert torch.allclose(dict(tr.G_ema.named_parameters())[k], before[k].lerp(p, w), atol=1e-7), k
        tr.step += 1
    moved = [(tr.G_ema.state_dict()[k] - start[k]).norm() / max(1e-12, float((tr.G.state_dict()[k] - start[k]).norm()))
             for k, _ in tr.G.named_parameters()]
    assert min(moved) > 0.8  # the average sits near the trained weights, not the initial ones


def test_a_checkpoint_from_before_the_weight_average_resumes(genre_videos, tmp_path):
    run = tmp_path / "old"
    train_genre(tiny_cfg(genre_videos["tunnel"], epochs=1), run, progress=False)
    ckpt = torch.load(run / "ckpt.pt", weights_only=True)
    del ckpt["G_ema"], ckpt["aug"]  # as an earlier release wrote it
    for key in ("upsample", "adaptive", "g_norm", "d_norm"):
        del ckpt["cfg"][key]
    torch.save(ckpt, run / "ckpt.pt")
    rows = [line.split(",") for line in (run / "log.csv").read_text().splitlines()]
    (run / "log.csv").write_text("".join(",".join(r[:-1]) + "\n" for r in rows))  # its log had no aug_p
    assert isinstance(load_generator(run / "ckpt.pt")[0].net[3], torch.nn.ConvTranspose2d)  # the seed's layers
    assert train_genre(tiny_cfg(genre_videos["tunnel"], epochs=2), run, resume=True, progress=False).epoch == 2
    assert "G_ema" in state(run) and "aug" in state(run)
    header, *rows = (run / "log.csv").read_text().splitlines()
    assert header.endswith(",spread,aug_p") and [r.split(",")[0] for r in rows] == ["1", "2"]
    with pytest.raises(ValueError, match="the checkpoint has upsample = 'deconv', the run's settings say 'resize'"):
        Trainer(run, tiny_cfg(genre_videos["tunnel"], upsample="resize"), resume=True, progress=False)
    with pytest.raises(ValueError, match="the checkpoint has d_norm = 'batch', the run's settings say 'spectral'"):
        Trainer(run, tiny_cfg(genre_videos["tunnel"], d_norm="spectral"), resume=True, progress=False)
    with pytest.raises(ValueError, match="the checkpoint has g_norm = 'batch', the run's settings say 'modulated'"):
        Trainer(run, tiny_cfg(genre_videos["tunnel"], g_norm="modulated"), resume=True, progress=False)


def test_existing_run_needs_resume(genre_videos, tmp_path):
    train_genre(tiny_cfg(genre_videos["tunnel"], epochs=1), tmp_path, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(tmp_path, tiny_cfg(genre_videos["tunnel"]))


def test_a_run_with_hours_stops_at_its_deadline_without_being_handed_one(genre_videos, tmp_path):
    """``hours`` in the settings is a deadline for any caller of train_genre, not only the CLI's queue
    (a bench that called it directly, with epochs 0 meaning "until the deadline", trained until it was killed)."""
    out = train_genre(tiny_cfg(genre_videos["tunnel"], epochs=3, hours=1e-6), tmp_path, progress=False)
    assert out.status == "deadline" and out.epoch == 0 and out.step >= 1
    assert state(tmp_path)["step"] == out.step  # a resumable checkpoint where it stopped


def _wait_for_mid_epoch_ckpt(run, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"trainer ended early: {proc.stderr.read()}")
        if (run / "ckpt.pt").exists():
            ck = state(run)
            if ck["batch_in_epoch"] > 0 and ck["epoch"] >= 1:
                return ck
        time.sleep(0.05)
    raise AssertionError("no mid-epoch checkpoint appeared")


def _train_proc(videos, runs, epochs, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "vj", "gan", "train", str(videos), "--genre", "g", "--runs", str(runs),
         "--epochs", str(epochs), "--batch", "2", "--fps", "8", "--set", "ngf=8", "--set", "ndf=8",
         "--set", "n_fixed=4", "--set", "ckpt_minutes=0", "--set", "kid_minutes=0", "--device", "cpu", "--no-progress",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def test_kill_9_mid_epoch_resumes_cleanly_and_exactly(genre_videos, tmp_path):
    videos = genre_videos["particles"]
    proc = _train_proc(videos, tmp_path / "killed", 3)
    _wait_for_mid_epoch_ckpt(tmp_path / "killed" / "gan" / "g", proc)
    proc.kill()  # SIGKILL: no chance to clean up (the lock goes with the process: the resume below gets it)
    proc.wait()
    resumed = _train_proc(videos, tmp_path / "killed", 3, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    straight = _train_proc(videos, tmp_path / "straight", 3)
    straight.communicate(timeout=300)
    a, b = state(tmp_path / "killed" / "gan" / "g"), state(tmp_path / "straight" / "gan" / "g")
    assert a["epoch"] == b["epoch"] == 3 and a["step"] == b["step"]
    assert all(torch.equal(a["G"][k], b["G"][k]) for k in a["G"])


def test_ctrl_c_checkpoints_says_how_to_resume_and_the_command_resumes(genre_videos, tmp_path):
    # 500 epochs: the run must outlive the second start below (it is stopped by Ctrl-C long before)
    proc = _train_proc(genre_videos["particles"], tmp_path, 500, "--augment", "color")
    _wait_for_mid_epoch_ckpt(tmp_path / "gan" / "g", proc)
    second = _train_proc(genre_videos["particles"], tmp_path, 500, "--resume")  # the same genre again: refused
    _, err = second.communicate(timeout=120)
    assert second.returncode == 1 and f"is in use by pid {proc.pid} (vj gan train)" in err, err
    assert proc.poll() is None  # the first trains on
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # interrupted: the shell's convention, after the checkpoint
    assert "interrupted" in err
    command = err.split("resume with: ")[1].splitlines()[0]
    assert command.startswith("vj gan train --genre g ") and command.endswith(" --resume")
    assert "--batch" not in command and "--augment" not in command  # short: the run's settings are in its config
    ck = state(tmp_path / "gan" / "g")
    resumed = run_vj(*command.split()[1:], "--epochs", str(ck["epoch"] + 1), check=True)
    assert "resuming with epochs = " in resumed.stderr and "done at epoch" in resumed.stderr
    cfg = (tmp_path / "gan" / "g" / "config.toml").read_text()
    assert 'augment = "color"' in cfg and "batch = 2" in cfg  # not rewritten with defaults


def test_bad_files_are_skipped_and_named(genre_videos, tmp_path):
    videos = tmp_path / "mixed"
    videos.mkdir()
    (videos / "good.mp4").write_bytes((genre_videos["plasma"] / "plasma_00.mp4").read_bytes())
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "noise.mov").write_bytes(os.urandom(4000))
    proc = run_vj("gan", "train", str(videos), "--genre", "mixed", "--runs", str(tmp_path / "runs"),
                  "--epochs", "1", *TINY, check=True)
    assert "empty.mp4" in proc.stderr and "noise.mov" in proc.stderr
    assert "used 1 video, skipped 2" in proc.stderr


def test_empty_folder_fails_clearly_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.mp4").write_bytes(b"")
    proc = run_vj("gan", "train", str(tmp_path / "empty"), "--genre", "e", "--runs", str(tmp_path / "runs"), *TINY)
    assert proc.returncode != 0
    assert "no usable video" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs" / "gan" / "e").exists()


def test_a_queue_with_a_missing_folder_is_refused_before_any_genre_trains(genre_videos, tmp_path):
    """An overnight queue whose last folder is a typo fails now, in one line, not after the others' hours."""
    runs = tmp_path / "runs"
    proc = run_vj("gan", "train", str(genre_videos["plasma"]), str(tmp_path / "partciles"), "--runs", str(runs),
                  *TINY)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{tmp_path / 'partciles'}: no such file or folder" in proc.stderr
    assert not (runs / "gan" / "plasma").exists()


def test_a_folder_names_its_genre_as_a_valid_name_and_a_queue_names_each_genre_once(tmp_path):
    from vj.core.runs import name_from

    assert [name_from(t) for t in ("my loops", "Clips é #1", "..hidden", "日本 ✨", "ok_v2.1")] == [
        "my-loops", "Clips-e-1", "hidden", "", "ok_v2.1"]
    for folder in (tmp_path / "日本 ✨", tmp_path / "a" / "loops", tmp_path / "b" / "loops"):
        folder.mkdir(parents=True)
        (folder / "x.png").write_bytes(b"")
    proc = run_vj("gan", "train", str(tmp_path / "日本 ✨"), "--runs", str(tmp_path / "runs"), *TINY)
    assert proc.returncode == 2 and "makes no genre name: give one with --genre NAME" in proc.stderr
    proc = run_vj("gan", "train", str(tmp_path / "a" / "loops"), str(tmp_path / "b" / "loops"), "--runs",
                  str(tmp_path / "runs"), *TINY)
    assert proc.returncode == 2 and "two folders of the queue make the genre 'loops'" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_run_records_its_folder_so_it_resumes_from_anywhere_and_a_presets_folder_is_named(genre_videos,
                                                                                                 tmp_path):
    import shutil

    shutil.copytree(genre_videos["plasma"], tmp_path / "loops")
    runs = tmp_path / "runs"
    run_vj("gan", "train", "loops", "--runs", str(runs), "--epochs", "1", *TINY, cwd=tmp_path, check=True)
    assert f'videos = "{tmp_path / "loops"}"' in (runs / "gan" / "loops" / "config.toml").read_text()
    (tmp_path / "elsewhere").mkdir()
    proc = run_vj("gan", "train", "--genre", "loops", "--resume", "--runs", str(runs), "--epochs", "2",
                  "--no-progress", cwd=tmp_path / "elsewhere")
    assert proc.returncode == 0 and "loops: done at epoch 2" in proc.stderr
    preset = tmp_path / "p.toml"
    preset.write_text('genre = "p"\nvideos = "~/no-such-loops-here"\n')
    proc = run_vj("gan", "train", "--preset", str(preset), "--runs", str(runs))
    assert proc.returncode == 2 and proc.stderr.strip().endswith(
        f"{preset}: videos = ~/no-such-loops-here: no such folder (edit it there, or give your folder with it: vj "
        f"gan train FOLDER --preset {preset})")
    # ... as it says: the preset's settings and genre on the folder given
    preset.write_text('genre = "p"\nvideos = "~/no-such-loops-here"\nd_norm = "spectral"\nngf = 8\nndf = 8\n')
    proc = run_vj("gan", "train", "loops", "--preset", str(preset), "--runs", str(runs), "--epochs", "1",
                  "--no-progress", "--fps", "4", cwd=tmp_path)
    assert proc.returncode == 0 and "p: done at epoch 1" in proc.stderr, proc.stderr[-2000:]
    saved = (runs / "gan" / "p" / "config.toml").read_text()
    assert 'd_norm = "spectral"' in saved and f'videos = "{tmp_path / "loops"}"' in saved
    two = tmp_path / "q.toml"
    two.write_text('genre = "q"\nvideos = "~/other-loops"\n')
    proc = run_vj("gan", "train", "loops", "--preset", str(preset), "--preset", str(two), "--runs", str(runs))
    assert proc.returncode == 2 and f"{preset} and {two} name their own videos" in proc.stderr


def test_presets_with_a_folder_are_its_settings_a_later_one_over_an_earlier_one(genre_videos, tmp_path):
    from gan.cli import _jobs
    from vj.cli import build_parser
    from vj.core.config import PRESETS

    def jobs(*argv):
        return _jobs(build_parser().parse_args(["gan", "train", *map(str, argv), "--runs", str(tmp_path)]))

    cpu, typo = PRESETS / "genres" / "quick-cpu.toml", tmp_path / "type.toml"
    typo.write_text('genre = "typography"\nvideos = "~/vj/loops/typography"\nsize = 96\n'
                    'augment = "translation,cutout"\nd_norm = "spectral"\n')  # a DCGAN preset, as they used to be
    [(cfg, run)] = jobs(genre_videos["tunnel"], "--preset", cpu, "--preset", typo)
    assert (cfg.genre, cfg.size, cfg.d_norm, cfg.videos) == ("typography", 96, "spectral", str(genre_videos["tunnel"]))
    assert (cfg.augment, cfg.adaptive) == ("translation,cutout", "")  # quick-cpu's adaptive colour: not in it
    [(cfg, run)] = jobs(genre_videos["tunnel"], "--preset", typo, "--preset", cpu, "--genre", "mine")
    assert (cfg.genre, cfg.size, cfg.d_norm, run.name) == ("mine", 64, "spectral", "mine")
    assert (cfg.augment, cfg.adaptive) == ("translation,color", "color")
    [(cfg, _)] = jobs(genre_videos["tunnel"], "--preset", cpu, "--augment", "translation")  # a flag: the same rule
    assert (cfg.augment, cfg.adaptive) == ("translation", "")
    [(cfg, _)] = jobs(genre_videos["tunnel"], "--preset", typo, "--arch", "fastgan", "--size", "256")
    assert (cfg.arch, cfg.d_norm, cfg.augment) == ("fastgan", "batch", "translation,cutout")  # its DCGAN D left out
    [(cfg, _)] = jobs(genre_videos["tunnel"], "--preset", cpu, "--arch", "fastgan", "--size", "256")
    assert (cfg.arch, cfg.upsample, cfg.g_norm, cfg.size) == ("fastgan", "deconv", "batch", 256)  # quick-cpu's left out
    [(cfg, _)] = jobs(genre_videos["tunnel"], "--preset", cpu, "--arch", "fastgan")  # its 64 px: FastGAN's smallest
    assert (cfg.arch, cfg.size, cfg.batch) == ("fastgan", 128, 8)
    with pytest.raises(ValueError, match="size 64 is not one of fastgan's sizes"):  # given with it: refused
        jobs(genre_videos["tunnel"], "--arch", "fastgan", "--size", "64")
    with pytest.raises(ValueError, match="d_norm = 'spectral' is DCGAN's setting"):  # given with it: refused
        jobs(genre_videos["tunnel"], "--arch", "fastgan", "--set", "d_norm=spectral")
    both = jobs(genre_videos["tunnel"], genre_videos["plasma"], "--preset", typo)  # each named after its folder
    assert [(c.genre, c.d_norm) for c, _ in both] == [("tunnel", "spectral"), ("plasma", "spectral")]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_every_shipped_genre_preset_trains_on_a_laptop_and_on_a_gpu(device):
    """A genre preset names its material; the machine's profile shapes the networks. The shipped ones named
    the seed's DCGAN 96 px, which FastGAN (the gpu profile's) has no layout for: on a GPU every one of them
    failed before training ("size 96 is not one of fastgan's sizes")."""
    from gan.config import PROFILES, preset_values, settings
    from vj.core.config import PRESETS

    arch = PROFILES["cpu" if device == "cpu" else "gpu"]["arch"]
    for path in sorted((PRESETS / "genres").glob("*.toml")):
        values = preset_values(path)
        cfg = settings({**values, "device": device}, where=str(path))
        assert cfg.arch == values.get("arch", arch), path.name


def test_nan_loss_stops_the_genre_and_keeps_the_last_good_checkpoint(genre_videos, tmp_path, monkeypatch):
    train_genre(tiny_cfg(genre_videos["plasma"], epochs=1), tmp_path, progress=False)
    good = state(tmp_path)
    from gan.model import Generator

    real_forward = Generator.forward
    monkeypatch.setattr(Generator, "forward", lambda self, z: real_forward(self, z) * float("nan"))
    outcome = train_genre(tiny_cfg(genre_videos["plasma"], epochs=3), tmp_path, resume=True, progress=False)
    assert outcome.status == "failed" and "nan" in outcome.message.lower()
    after = state(tmp_path)
    assert after["epoch"] == good["epoch"] == 1
    assert all(torch.equal(after["G"][k], good["G"][k]) for k in good["G"])


def test_checkpoints_every_ckpt_minutes_not_every_epoch(tmp_path, monkeypatch):
    """Short epochs (a GPU's are 0.3 s) do not each write a checkpoint; the end of the run always does."""
    frames = np.random.default_rng(0).integers(0, 256, (24, 64, 64, 3), dtype=np.uint8)
    saves = []
    real_save = Trainer.save
    monkeypatch.setattr(Trainer, "save", lambda self: (saves.append((self.epoch, self.batch_in_epoch)), real_save(self)))
    cfg = TrainConfig(genre="g", size=64, batch=8, ngf=8, ndf=8, n_fixed=4, epochs=3, device="cpu")
    Trainer(tmp_path / "a", cfg, progress=False).fit(frames, np.arange(24))
    assert saves == [(3, 0)]
    saves.clear()
    Trainer(tmp_path / "b", replace(cfg, ckpt_minutes=0), progress=False).fit(frames, np.arange(24))
    assert saves == [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (3, 0)]
    assert len(list((tmp_path / "a" / "samples").glob("epoch_*.png"))) == 4  # the writer thread finished


def test_queue_goes_on_when_one_genre_fails_and_summarises(genre_videos, tmp_path):
    (tmp_path / "broken").mkdir()  # a video that does not decode: found only when its frames are read
    (tmp_path / "broken" / "x.mp4").write_bytes(b"not a video")
    proc = run_vj("gan", "train", str(tmp_path / "broken"), str(genre_videos["tunnel"]), "--runs",
                  str(tmp_path / "runs"), "--epochs", "1", *TINY)
    assert proc.returncode == 1
    assert "broken: failed" in proc.stderr and "tunnel: done at epoch 1" in proc.stderr


def test_a_folder_of_stills_and_loops_trains_one_frame_per_still(genre_videos, tmp_path):
    """A few-shot genre can be a folder of images (posters, photos), or images beside the loops."""
    from PIL import Image

    folder = tmp_path / "stills"
    (folder / "more").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(12):
        img = np.zeros((90, 120, 3), np.uint8)
        y, x = rng.integers(0, 60, 2)
        img[y:y + 30, x:x + 40] = rng.integers(0, 256, 3)
        Image.fromarray(img).save(folder / ("more" if i % 2 else "") / f"s{i:02d}.{'png' if i % 3 else 'jpg'}")
    only = build_cache(folder, tmp_path / "a", 32, 8, progress=False)
    assert len(only) == 12 and only.report.startswith("used 12 images")
    rows = np.asarray(only.frames).reshape(12, -1)
    assert len(np.unique(rows, axis=0)) == 12  # each still once, cropped and resized like a frame
    (folder / "loop.mp4").write_bytes(sorted(genre_videos["plasma"].glob("*.mp4"))[0].read_bytes())
    both = build_cache(folder, tmp_path / "a", 32, 8, progress=False)
    assert both.report.startswith("used 1 video and 12 images") and len(both) > 12
    outcome = train_genre(tiny_cfg(folder, epochs=1), tmp_path / "run", progress=False)
    assert outcome.status == "done"


def test_adding_a_video_adds_only_its_frames(genre_videos, tmp_path):
    videos = tmp_path / "v"
    videos.mkdir()
    src = sorted(genre_videos["typography"].glob("*.mp4"))
    (videos / "a.mp4").write_bytes(src[0].read_bytes())
    first = build_cache(videos, tmp_path / "cache", 32, 8, progress=False)
    n1, head = len(first), np.array(first.frames[:3])
    (videos / "b.mp4").write_bytes(src[1].read_bytes())
    second = build_cache(videos, tmp_path / "cache", 32, 8, progress=False)
    assert "(1 from cache)" in second.report and len(second) > n1
    assert np.array_equal(np.asarray(second.frames[:3]), head)
    (videos / "a.mp4").unlink()  # a removed video leaves training
    assert len(build_cache(videos, tmp_path / "cache", 32, 8, progress=False)) == len(second) - n1


def test_a_runs_folder_inside_the_loops_folder_is_not_trained_on(genre_videos, tmp_path):
    """``cd ~/loops && vj gan train .`` puts runs/ inside the loops: the second genre trains on the loops,
    not on the first genre's learning clips and walks."""
    loops = tmp_path / "loops"
    loops.mkdir()
    (loops / "a.mp4").write_bytes(sorted(genre_videos["typography"].glob("*.mp4"))[0].read_bytes())
    first = GanRun.of(loops / "runs", "one")
    train_genre(tiny_cfg(loops, "one", epochs=1), first, progress=False)
    first.clips.mkdir()
    (first.clip("walk")).write_bytes((loops / "a.mp4").read_bytes())  # a clip the tool wrote
    second = GanRun.of(loops / "runs", "two")
    train_genre(tiny_cfg(loops, "two", epochs=1), second, progress=False)
    used = [v["path"] for v in json.loads((second.frames / "index.json").read_text())["videos"]]
    assert used == [str((loops / "a.mp4").resolve())]


def test_dedupe_drops_static_stretches(tmp_path):
    from vj.core.media import VideoWriter

    with VideoWriter(tmp_path / "v" / "static.mp4", 10, (64, 64)) as w:
        for i in range(20):
            w.write(np.full((64, 64, 3), 100 if i < 15 else 200, np.uint8))
    assert len(build_cache(tmp_path / "v", tmp_path / "c", 32, 10, dedupe=2.0, progress=False)) == 2
    with pytest.raises(NoUsableVideo):
        build_cache(tmp_path / "nothing_here", tmp_path / "d", 32, 10, progress=False) if \
            (tmp_path / "nothing_here").mkdir() is None else None


def test_latent_walk_loops_seamlessly():
    walk = LatentWalk(nz=16, keys=4, seconds_per_key=0.5, seed=3)
    assert torch.allclose(walk(0.0), walk(walk.period), atol=1e-6)
    assert not torch.allclose(walk(0.0), walk(0.25))


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_the_resize_doubling_is_an_upsampling_then_a_3x3_convolution_borders_included(mode):
    """One transposed convolution computes the two-step layer exactly: nearest doubling then a zero-padded
    3x3 convolution, or bilinear interpolation then an edge-padded one; it trains the same 3x3 weights, and
    its plain layers (for folding and ONNX) give the same output."""
    import torch.nn.functional as F

    from gan.model import ResizeConv

    torch.manual_seed(0)
    m = ResizeConv(5, 4, mode)
    m.conv.weight.data.normal_()
    x = torch.randn(2, 5, 7, 9, requires_grad=True)
    if mode == "nearest":
        two_step = m.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    else:
        up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        two_step = F.conv2d(F.pad(up, [1, 1, 1, 1], mode="replicate"), m.conv.weight)
    assert m(x).shape == (2, 4, 14, 18) and torch.allclose(m(x), two_step, atol=1e-4)
    assert torch.allclose(torch.nn.Sequential(*m.plain_layers())(x), two_step, atol=1e-4)
    g1, = torch.autograd.grad(m(x).square().sum(), m.conv.weight)  # it trains the same 3x3 weights too
    g2, = torch.autograd.grad(two_step.square().sum(), m.conv.weight)
    assert torch.allclose(g1, g2, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="mode 'bicubic' is not one of nearest, bilinear"):
        ResizeConv(5, 4, "bicubic")


def test_a_modulated_generator_starts_as_the_batchnorm_one_and_learns_each_images_scale_from_its_latent():
    from gan.model import ModulatedBatchNorm

    torch.manual_seed(0)
    mod = Generator(32, 16, 8, "resize", "modulated")
    mod.apply(init_weights)
    plain = Generator(32, 16, 8, "resize", "batch")
    convs = {k: v for k, v in mod.state_dict().items() if ".bn." not in k and ".mlp." not in k}
    plain.load_state_dict(convs, strict=False)  # the same convolutions; BatchNorm's own scale 1 and shift 0
    for m in plain.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)
    z = torch.randn(8, 16)
    assert torch.allclose(mod(z), plain(z), atol=1e-6)  # untrained, it is the seed's generator
    first = next(m for m in mod.modules() if isinstance(m, ModulatedBatchNorm))
    mod(z).square().mean().backward()
    assert first.mlp[2].weight.grad.abs().sum() > 0  # the latent's scale and shift learn from the first step
    with torch.no_grad():
        first.mlp[2].weight.normal_(0, 0.3)
        x = torch.randn(8, 32, 4, 4)  # one feature map (the base, 32 channels), two latents: two scales
        a, b = first(x, z), first(x, torch.roll(z, 1, 0))
    assert not torch.allclose(a, b, atol=1e-3)
    with pytest.raises(ValueError, match="norm 'layer' is not one of batch, modulated"):
        Generator(32, norm="layer")


def test_a_spectral_discriminator_judges_each_image_alone_with_unit_spectral_norms():
    import copy

    from gan.model import Discriminator

    torch.manual_seed(0)
    x = torch.randn(8, 3, 64, 64)
    for norm, alone in (("spectral", True), ("batch", False)):
        d = Discriminator(64, ndf=8, norm=norm)
        d.apply(init_weights)
        whole, first = copy.deepcopy(d)(x)[:1], copy.deepcopy(d)(x[:1])  # training mode, as in a step
        assert torch.allclose(whole, first, atol=1e-5) == alone, norm  # BatchNorm judges by the batch
    d = Discriminator(64, ndf=8, norm="spectral")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    d.apply(init_weights)
    raw = [m.parametrizations.weight.original for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(raw) == 5 and all(abs(float(w.detach().std()) - 0.02) < 0.005 for w in raw)  # DCGAN's init, raw weights
    for _ in range(30):  # the power iteration, one step a call, converges
        d(x)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    sigmas = [float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)) for m in convs]
    assert all(abs(s - 1) < 0.02 for s in sigmas), sigmas
    with pytest.raises(ValueError, match="norm 'layer' is not one of batch, spectral"):
        Discriminator(64, norm="layer")


@pytest.mark.parametrize("upsample, norm", [("deconv", "batch"), ("resize", "batch"), ("bilinear", "batch"),
                                           ("resize", "modulated")])
def test_frozen_renderer_folds_batchnorm_and_runs_single_images_on_onnx_runtime(monkeypatch, upsample, norm):
    torch.manual_seed(0)
    g = Generator(32, upsample=upsample, norm=norm)
    g.apply(init_weights)
    for m in g.modules():  # trained-looking statistics, so a wrong fold cannot pass by accident
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            if m.affine:
                m.bias.data.uniform_(-0.2, 0.2)
        if isinstance(m, torch.nn.Linear):  # a trained modulation: its last layer no longer zero
            m.weight.data.normal_(0, 0.2)
            m.bias.data.uniform_(-0.2, 0.2)
    g.eval()
    z = torch.randn(3, g.nz)
    folded = fold_batchnorm(g)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        assert torch.allclose(folded(z), g(z), atol=1e-5)
    reference = torch.randn(16, g.nz)
    onnx = BatchStatsRenderer(g, reference)
    plain = BatchStatsRenderer(g, reference, runtime="torch")
    assert onnx.runtime == "onnx" and plain.runtime == "torch"
    for z1 in (z[:1], z[1:2]):  # single images through ONNX Runtime, the same picture as torch's
        assert torch.allclose(onnx(z1), plain(z1), atol=1e-4)
    assert torch.allclose(onnx(z), plain(z), atol=1e-5)  # a batch goes to torch
    assert BatchStatsRenderer(g, size=0).runtime == "torch"  # batch statistics: nothing to fold
    import gan.walk

    def missing(*a, **k):
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setattr(gan.walk, "CpuSession", missing)  # onnxruntime not installed: torch, same images
    fallback = BatchStatsRenderer(g, reference)
    assert fallback.runtime == "torch" and torch.equal(fallback(z[:1]), plain(z[:1]))
    with pytest.raises(ImportError):
        BatchStatsRenderer(g, reference, runtime="onnx")


def test_genre_preset_loads_and_unknown_keys_are_named(tmp_path):
    cfg = load_preset(ROOT / "presets" / "genres" / "particles.toml")
    assert cfg.genre == "particles" and cfg.videos == "~/vj/loops/particles"
    bad = tmp_path / "bad.toml"
    bad.write_text('genre = "x"\nvideos = "y"\nlearning_rate = 1\n')
    with pytest.raises(ConfigError, match="bad.toml: unknown key 'learning_rate'"):
        load_preset(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# each torchrun worker names its native threads as it exits (an atexit hook runs before the interpreter shuts down)
EXIT_PROBE = """
import atexit, os, sys

def _threads():
    if "RANK" in os.environ:
        names = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
        sys.stderr.write(f"rank {os.environ['RANK']} threads at exit: {names}\\n")

atexit.register(_threads)
"""

# rank 1 alone changes one of gan.train's functions, as soon as the module has loaded (at the next import)
ON_RANK_1 = """
import builtins, os, sys

if os.environ.get("RANK") == "1":
    _import = builtins.__import__

    def _patching(*args, **kw):
        module = _import(*args, **kw)
        train = sys.modules.get("gan.train")
        if train is not None and hasattr(train, "Trainer") and not getattr(train, "_patched", False):
            train._patched = True
            patch(train)
        return module

    builtins.__import__ = _patching
"""


def torchrun_train(tmp_path, videos, *flags, hook: str = EXIT_PROBE, timeout: float = 300):
    """``vj gan train`` in two processes under torchrun, on 127.0.0.1, each with ``hook`` run at start-up."""
    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    (probe / "sitecustomize.py").write_text(hook)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "vj", "gan", "train", str(videos), "--genre", "ddp", "--runs",
           str(tmp_path), "--device", "cpu", *TINY, *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(probe)},
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # hung: torchrun stops its workers (each in a session of its own) on SIGTERM
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"torchrun still running after {timeout} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.parametrize("d_norm", ["batch", "spectral"])
def test_two_process_ddp_trains_on_cpu(genre_videos, tmp_path, d_norm):
    proc = torchrun_train(tmp_path, genre_videos["tunnel"], "--epochs", "2", "--set", f"d_norm={d_norm}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ck = state(tmp_path / "gan" / "ddp")
    assert ck["epoch"] == 2
    assert proc.stderr.count("ddp: done at epoch 2") == 1  # only rank 0 reports and writes
    assert proc.stderr.count("ddp: profile cpu:") == 1  # and only it says what the profile chose
    # every rank left its process group before exiting: no Gloo thread is left for the interpreter's shutdown,
    # where freeing the group killed a finished rank with SIGABRT now and then (one CI run in about a dozen)
    exits = [line for line in proc.stderr.splitlines() if "threads at exit" in line]
    assert len(exits) == 2 and not any("gloo" in line for line in exits), exits


def test_under_torchrun_a_deadline_stops_every_process_at_the_same_step(genre_videos, tmp_path):
    # rank 1's deadline 2 s later than rank 0's: a process started later, or a second machine's clock. Each
    # stopping on its own clock, rank 0 left while rank 1 waited in the next step's all-reduce for ever.
    late = ON_RANK_1 + """
def patch(train):
    deadline_from = train.deadline_from
    train.deadline_from = lambda cfg, now=None: deadline_from(cfg, now) + 2.0
"""
    proc = torchrun_train(tmp_path, genre_videos["tunnel"], "--hours", "0.002", hook=late, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"ddp: deadline at epoch \d+ \(step \d+\)", proc.stderr), proc.stderr[-2000:]
    assert state(tmp_path / "gan" / "ddp")["step"] > 0


def test_under_torchrun_a_process_that_fails_stops_the_run_in_one_line(genre_videos, tmp_path):
    # rank 1 fails at its 4th step; rank 0 would have waited in that step's all-reduce for Gloo's half hour
    failing = ON_RANK_1 + """
def patch(train):
    step = train.Trainer.train_batch

    def failing(self, *args, **kw):
        if self.step >= 3:
            raise RuntimeError("a failure on rank 1 alone")
        return step(self, *args, **kw)

    train.Trainer.train_batch = failing
"""
    proc = torchrun_train(tmp_path, genre_videos["tunnel"], "--epochs", "50", hook=failing, timeout=120)
    assert proc.returncode != 0
    assert re.search(r"ddp: failed on rank 1 at epoch \d+ \(step 3\): RuntimeError: a failure on rank 1 alone\. "
                     r"Every process stops; resume with --resume\n", proc.stderr), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr.split("ddp: failed on rank 1")[0]  # the error's own line, no trace


def test_a_rank_leaves_its_process_group_after_the_queue(tmp_path, monkeypatch):
    """Without it Gloo's threads outlived the interpreter: a rank whose run succeeded died with SIGABRT now
    and then ("terminate called without an active exception"), failing the test above (twice in about a dozen
    suite runs)."""
    import torch.distributed as dist

    from gan.train import close_dist

    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # loopback only
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    close_dist()
    assert not dist.is_initialized()
    close_dist()  # no group (a plain run): nothing to do


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none; run on the device)")


@cuda
@pytest.mark.parametrize("arch, upsample, g_norm, d_norm", [
    ("dcgan", "deconv", "batch", "batch"), ("dcgan", "resize", "modulated", "spectral"),
    ("dcgan", "bilinear", "batch", "batch"), ("fastgan", "deconv", "batch", "batch")],
    ids=["dcgan", "dcgan-resize-modulated-spectral", "dcgan-bilinear", "fastgan"])
def test_cuda_graph_step_equals_the_eager_step(tmp_path, arch, upsample, g_norm, d_norm):
    """The captured-and-replayed step trains the same networks as eager steps (same batches, same RNG);
    FastGAN replays one graph per decoder quarter, picked by the same host draws as its eager steps. The
    `resize` and `bilinear` generators build their transposed kernels from their 3x3 weights inside the graph,
    at every replay, a modulated G reads its scales from the latents there, and a spectrally normalised D
    runs its power iteration there."""
    size, batch, steps = (64, 16, 8) if arch == "dcgan" else (128, 8, 16)
    frames = np.random.default_rng(0).integers(0, 256, (4 * batch, size, size, 3), dtype=np.uint8)
    runs = {}
    for graphed in (False, True):
        cfg = TrainConfig(genre="g", arch=arch, size=size, batch=batch, nz=64, ngf=16, ndf=16, n_fixed=16,
                          augment="color,translation,cutout", device="cuda", cuda_graph=graphed, upsample=upsample,
                          g_norm=g_norm, d_norm=d_norm)
        tr = Trainer(tmp_path / str(graphed), cfg, progress=False)
        assert tr.graphed == graphed
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        torch.cuda.manual_seed(1)
        store = tr.upload(frames)
        stats = []
        for i in range(steps):
            stats.append(tr.train_batch(store, torch.arange(i % 4 * batch, (i % 4 + 1) * batch, device="cuda")))
            tr.step += 1  # as the loop counts: the weight average's ramp, read by the graph at every replay
        nets = {**{f"G.{k}": v for k, v in tr.G.state_dict().items()},
                **{f"D.{k}": v for k, v in tr.D.state_dict().items()},
                **{f"G_ema.{k}": v for k, v in tr.G_ema.state_dict().items()}}
        runs[graphed] = (torch.stack(stats).cpu(), {k: v.float().cpu() for k, v in nets.items()})
        if graphed:
            assert 1 < len(tr._graphs) <= 4 if arch == "fastgan" else len(tr._graphs) == 1
    (s0, g0), (s1, g1) = runs[False], runs[True]
    assert torch.isfinite(s1).all()
    assert torch.allclose(s0, s1, atol=2e-2), (s0 - s1).abs().max()
    for k in g0:
        assert torch.allclose(g0[k], g1[k], atol=2e-3), k


@cuda
def test_gpu_run_trains_samples_and_resumes(genre_videos, tmp_path):
    cfg = tiny_cfg(genre_videos["plasma"], device="cuda", epochs=2)
    first = train_genre(cfg, tmp_path / "run", progress=False)
    assert first.status == "done" and first.epoch == 2
    second = train_genre(replace(cfg, epochs=3), tmp_path / "run", resume=True, progress=False)
    assert second.status == "done" and second.epoch == 3
    assert len(list((tmp_path / "run" / "samples").glob("epoch_*.png"))) == 4
    assert all(torch.isfinite(v.float()).all() for v in state(tmp_path / "run")["G"].values())


def test_a_frame_cache_goes_on_the_gpu_only_within_half_its_free_memory():
    from gan.train import cache_fits

    assert cache_fits(10 * 2**30, 22 * 2**30)          # 10 GB of 256 px frames on a 24 GB card: resident
    assert not cache_fits(56 * 2**30, 22 * 2**30)      # 1024 px frames of a long library: from host memory


@cuda
def test_gpu_run_whose_cache_does_not_fit_trains_from_host_memory(genre_videos, tmp_path, monkeypatch, caplog):
    import gan.train

    monkeypatch.setattr(gan.train, "cache_fits", lambda nbytes, free: False)
    with caplog.at_level("WARNING"):
        outcome = train_genre(tiny_cfg(genre_videos["plasma"], device="cuda", epochs=2), tmp_path / "r",
                              progress=False)
    assert outcome.status == "done" and "copied from host memory" in caplog.text
    assert all(torch.isfinite(v.float()).all() for v in state(tmp_path / "r")["G"].values())


@cuda
def test_gpu_fastgan_trains_at_256_and_its_live_layer_renders(genre_videos, tmp_path):
    from gan.model import load_generator
    from vj.effects import FrameContext
    from vj.mix import as_frame
    from vj.sources import GeneratorSource

    cfg = tiny_cfg(genre_videos["particles"], device="cuda", arch="fastgan", size=256, nz=64, ngf=16, ndf=16,
                   batch=8, epochs=2, augment="color,translation", kid_epochs=1)
    out = train_genre(cfg, tmp_path / "run", progress=False)
    assert out.status == "done" and out.epoch == 2
    assert any(line.split(",")[8] for line in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:])
    G, noise = load_generator(tmp_path / "run" / "ckpt.pt", "cuda")
    src = GeneratorSource((1920, 1080), tmp_path / "run" / "ckpt.pt", exact=True, device="cuda")
    frame = as_frame(src.frame(FrameContext(t=0.5), {**GeneratorSource.defaults(), "rate": 60}))
    src.close()
    assert frame.shape == (1080, 1920, 3) and frame.std() > 1


def test_compile_that_fails_falls_back_to_eager_with_one_warning(tmp_path, monkeypatch, caplog):
    """A compiler that cannot handle the model (inductor + CUDA on torch 2.11) must not crash the run."""
    def broken_compile(module, *a, **kw):
        def fail(*args, **kwargs):
            raise AssertionError("expected size 512==512, stride 36==1 at dim=1")
        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    frames = np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    cfg = TrainConfig(genre="g", size=64, batch=8, ngf=8, ndf=8, n_fixed=4, epochs=1, device="cpu", compile=True)
    eager = Trainer(tmp_path / "eager", replace(cfg, compile=False), progress=False).train_batch(frames, np.arange(8))
    with caplog.at_level("WARNING"):
        tr = Trainer(tmp_path / "c", cfg, progress=False)
    assert tr.G_train is tr.G and "torch.compile cannot train this model" in caplog.text
    assert torch.equal(tr.train_batch(frames, np.arange(8)), eager)  # the probe left weights and RNG alone


# ---------------------------------------------------------------- show-proof: resume rules, crash consistency
def test_resume_refuses_flags_that_change_the_model_or_its_data(genre_videos, tmp_path):
    runs = tmp_path / "runs"
    run_vj("gan", "train", str(genre_videos["plasma"]), "--genre", "p", "--runs", str(runs), "--epochs", "1",
           *TINY, check=True)
    frames = (runs / "gan" / "p" / "frames" / "index.json").read_text()
    for flag, value, words in (("--size", "96", "size = 64"), ("--batch", "16", "batch = 8"),
                               ("--fps", "20", "fps = 8.0"), ("--augment", "cutout", "augment = 'translation,color'")):
        proc = run_vj("gan", "train", "--genre", "p", "--runs", str(runs), "--resume", flag, value)
        assert proc.returncode == 2 and words in proc.stderr and flag in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_vj("gan", "train", "--genre", "p", "--runs", str(runs), "--resume", "--set", "adaptive=")
    assert proc.returncode == 2 and proc.stderr.startswith("vj: error: --adaptive '': this run was trained with "
                                                           "adaptive = 'color'")  # an empty value, said as ''
    proc = run_vj("gan", "train", "--genre", "p", "--runs", str(runs), "--resume", "--epochs", "2", check=True)
    assert "resuming with epochs = 2 (was 1)" in proc.stderr and "done at epoch 2" in proc.stderr
    assert (runs / "gan" / "p" / "frames" / "index.json").read_text() == frames  # the same cache, not rebuilt
    assert 'fps = 8.0' in (runs / "gan" / "p" / "config.toml").read_text()
    # a bad --set value is named as the command line's, not as the videos folder's
    proc = run_vj("gan", "train", str(genre_videos["plasma"]), "--genre", "q", "--runs", str(runs), "--set", "batch=abc")
    assert proc.returncode == 2 and proc.stderr.strip() == "vj: error: command line: batch = 'abc' is not a valid int"


def test_a_kill_leaves_nothing_that_breaks_the_next_start(genre_videos, tmp_path):
    """What a kill at the wrong moment leaves: a temp checkpoint (on a full disk it blocked every resume), a
    torn log row, rows of epochs after the checkpoint, an empty sample PNG from an older version."""
    run = tmp_path / "r"
    train_genre(tiny_cfg(genre_videos["tunnel"], epochs=2), run, progress=False)
    (run / ".ckpt.pt.tmp4242").write_bytes(b"\0" * 1000)
    log = run / "log.csv"
    log.write_text(log.read_text() + "3,30,0.1,0.2,0.3,0.4,5.0,9.0\n4,40,0.1")  # after the ckpt, and torn
    (run / "samples" / "epoch_00001.png").write_bytes(b"")
    train_genre(tiny_cfg(genre_videos["tunnel"], epochs=3), run, resume=True, progress=False)
    assert not (run / ".ckpt.pt.tmp4242").exists()
    epochs = [line.split(",")[0] for line in log.read_text().splitlines()[1:]]
    assert epochs == ["1", "2", "3"]  # every epoch once: none lost, none twice
    from gan.clips import learning_clip
    from vj.core.runs import GanRun

    n = learning_clip(GanRun(run), tmp_path / "c.mp4", progress=False)  # the empty sample is skipped...
    assert n == len(list((run / "samples").glob("epoch_*.png"))) - 1


def test_one_process_holds_a_run_and_a_mosaic_build_is_refused_while_another_holds_it(tmp_path):
    from mosaic.pipeline import build
    from vj.core.runs import MosaicRun, RunBusy, hold

    run = tmp_path / "runs" / "gan" / "g"
    run.mkdir(parents=True)
    (run / "config.toml").write_text("")
    with hold(run, "vj gan train"):
        assert f"pid {os.getpid()} (vj gan train)" in (run / ".lock").read_text()
        with pytest.raises(RunBusy, match=rf"runs/gan/g is in use by pid {os.getpid()} \(vj gan train\)"):
            with hold(run, "vj gan train"):
                pass
    with hold(run, "again"):  # released at the end of the block, by an error too
        pass
    assert (run / ".lock").exists()  # a run folder that was there stays as it was
    with hold(tmp_path / "new", "vj gan train"):  # one made here and left empty goes again
        pass
    assert not (tmp_path / "new").exists()
    mosaic = MosaicRun.of(tmp_path / "runs", "m")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"x")
    with hold(mosaic.path, "vj mosaic build"):
        with pytest.raises(RunBusy, match="runs/mosaic/m is in use by pid .* \\(vj mosaic build\\)"):
            build([tmp_path / "img"], mosaic)
    assert not mosaic.path.exists()  # the build wrote nothing, and the lock's folder went again


def test_samples_and_checkpoints_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    import errno

    from vj.core import runs

    path = tmp_path / "ckpt.pt"
    runs.atomic_write_bytes(path, b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs.os, "fsync", full)
    with pytest.raises(runs.DiskFull, match=r"disk full writing .*ckpt.pt: it needs 0.0 MB, .* free \(the "
                                            r"previous ckpt.pt is kept\)"):
        runs.atomic_write_bytes(path, b"new" * 10)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_a_failure_names_the_real_error_its_epoch_and_step(genre_videos, tmp_path, monkeypatch):
    import errno

    import gan.train

    calls = {"n": 0}
    step = gan.train.Trainer.train_step

    def read_only_after_a_while(self, real):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "r" / "samples"))
        return step(self, real)

    monkeypatch.setattr(gan.train.Trainer, "train_step", read_only_after_a_while)
    monkeypatch.setattr(gan.train, "plot_losses", lambda *a: (_ for _ in ()).throw(OSError(errno.EROFS, "ro")))
    outcome = gan.train.train_queue([(tiny_cfg(genre_videos["tunnel"], epochs=3), tmp_path / "r")], resume=False,
                                    progress=False)[0]
    assert outcome.status == "failed" and (outcome.epoch, outcome.step) != (0, 0)
    assert "Read-only file system" in outcome.message and "samples" in outcome.message  # not the plot's error


def test_exported_generator_is_small_and_loads_like_a_checkpoint(genre_videos, tmp_path):
    runs = tmp_path / "runs"
    run_vj("gan", "train", str(genre_videos["plasma"]), "--genre", "p", "--runs", str(runs), "--epochs", "1",
           *TINY, check=True)
    proc = run_vj("gan", "export", "p", "--runs", str(runs), check=True)
    out = runs / "gan" / "p" / "generator.pt"
    assert "float16" in proc.stderr and out.stat().st_size < 0.3 * (runs / "gan" / "p" / "ckpt.pt").stat().st_size
    from gan.model import load_generator

    g, noise = load_generator(out)
    ref, _ = load_generator(runs / "gan" / "p" / "ckpt.pt")
    with torch.no_grad():
        assert (g(noise[:2]) - ref(noise[:2])).abs().max() < 0.02  # fp16 weights, the same images
    bad = runs / "gan" / "bad" / "ckpt.pt"
    bad.parent.mkdir()
    bad.write_bytes(b"not a checkpoint")
    (runs / "gan" / "bad" / "config.toml").write_text((runs / "gan" / "p" / "config.toml").read_text())
    for command in (("walk", "bad", "--seconds", "0.2"), ("score", "bad"), ("export", "bad")):
        proc = run_vj("gan", *command, "--runs", str(runs))
        assert proc.returncode == 2 and "ckpt.pt: not a readable checkpoint" in proc.stderr, command
        assert "Traceback" not in proc.stderr
    proc = run_vj("gan", "train", "--genre", "bad", "--resume", "--runs", str(runs), "--epochs", "9")
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and "not a readable checkpoint" in last and "start the genre over" in last
    assert "resume with" not in last  # resuming it again would fail the same way


# ---------------------------------------------------------------- quality: KID, profiles, FastGAN, clip length
def test_kid_is_the_unbiased_polynomial_mmd_and_separates_frames_from_noise(genre_videos, tmp_path):
    from gan.quality import Features, kid, polynomial_mmd

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(0.5, 1, size=(5, 3))
    k = lambda a, b: (a @ b.T / 3 + 1) ** 3  # noqa: E731 - the definition, spelled out
    direct = ((k(x, x).sum() - np.trace(k(x, x))) / 30 + (k(y, y).sum() - np.trace(k(y, y))) / 20
              - 2 * k(x, y).mean())
    assert polynomial_mmd(x, y) == pytest.approx(direct, rel=1e-12)
    cache = build_cache(genre_videos["plasma"], tmp_path / "c", 64, 12, progress=False)
    frames = np.asarray(cache.frames[cache.active])
    half_a, half_b = Features.of(frames[0::2]), Features.of(frames[1::2])
    noise = Features.of(np.random.default_rng(1).integers(0, 255, frames.shape, dtype=np.uint8))
    same, versus_noise = kid(half_a, half_b, subset_size=12), kid(half_a, noise, subset_size=12)
    assert abs(same.value) < 0.05 and versus_noise.value > 0.5 and versus_noise.value > 20 * abs(same.value)
    assert same.se > 0  # subsets smaller than the sets: a spread to report


def test_diagnose_names_a_winning_discriminator_a_rising_kid_and_a_collapse():
    from gan.quality import diagnose

    assert diagnose([{"epoch": e, "d_g_z": 0.3} for e in range(5)]) is None
    assert "discriminator wins" in diagnose([{"epoch": e, "d_g_z": 0.01} for e in range(5)])
    rising = [{"epoch": e, "d_g_z": 0.3, "kid": v} for e, v in enumerate([0.05, 0.02, 0.03, 0.04, 0.06])]
    assert "KID has risen" in diagnose(rising)
    collapsed = [{"epoch": e, "d_g_z": 0.3, "spread": 0.1} for e in range(3)]
    assert "collapsing" in diagnose(collapsed, real_spread=0.9)
    # measured every 10th epoch, as a CPU run's KID worker does: the last two measurements, not the last two rows
    spaced = [{"epoch": e, "d_g_z": 0.3, "spread": 0.1 if e % 10 == 0 else None} for e in range(25)]
    assert "collapsing" in diagnose(spaced, real_spread=0.9)


def test_a_measurement_of_an_epoch_no_longer_in_memory_still_reaches_the_log_and_the_advice(tmp_path):
    """A long run keeps only its measured and its recent epochs in memory (diagnose ran over every epoch of
    the run, every epoch); a KID that finishes after its epoch left that window is still recorded."""
    from types import SimpleNamespace

    from gan.train import LOG_FIELDS

    tr = Trainer(tmp_path, tiny_cfg(tmp_path), progress=False)
    (tmp_path / "log.csv").write_text(",".join(LOG_FIELDS) + "\n" + "".join(
        f"{e},{9 * e},1,1,0.5,0.5,300,{e}" + "," * (len(LOG_FIELDS) - 8) + "\n" for e in range(1, 401)))
    history = [{"epoch": e, "d_g_z": 0.5, "kid": None, "spread": None} for e in range(272, 401)]
    tr.quality = SimpleNamespace(take=lambda: [(10, SimpleNamespace(value=0.25, se=0.01), 0.5)])
    tr._record_quality(history)
    assert history[0] == {"epoch": 10, "d_g_z": None, "kid": 0.25, "spread": 0.5} and len(history) == 130
    assert "10,90,1,1,0.5,0.5,300,10,0.250000,0.010000,0.5000" in (tmp_path / "log.csv").read_text()
    tr.quality = None


def test_a_measurement_fills_its_rows_of_a_long_log_and_leaves_every_other_byte(tmp_path):
    """An overnight log of short epochs is megabytes; a KID that finishes fills its epoch's row (a recent one:
    only the tail is read) or one far back (the window grows), epoch 0 gets a row of its own, a torn last row
    is left for the repair, and every other row is byte for byte as it was."""
    from vj.core.runs import fill_log

    path = tmp_path / "log.csv"
    rows = ["epoch,step,loss,kid,spread"] + [f"{e},{9 * e},0.69{e % 7}," + ("," if e % 5 else "0.5,1") for e in
                                              range(1, 20001)]
    path.write_text("\n".join(rows) + "\n19999,17")  # a row torn by a kill: the repair drops it at the next start
    assert path.stat().st_size > 4 * 65536
    fill_log(path, {19990: {"kid": "0.25", "spread": "0.9"}, 12: {"kid": "0.75"}, 0: {"step": "0", "kid": "1.5"}})
    assert (rows[12], rows[19990]) == ("12,108,0.695,,", "19990,179910,0.695,0.5,1")
    want = rows[:1] + ["0,0,,1.5,"] + rows[1:12] + ["12,108,0.695,0.75,"] + rows[13:19990] + [
        "19990,179910,0.695,0.25,0.9"] + rows[19991:] + ["19999,17"]
    assert path.read_text().splitlines() == want
    fill_log(path, {20000: {"kid": "0.1"}, 20001: {"kid": "0.2"}})  # a finished row; an epoch not logged yet
    assert path.read_text().splitlines()[-3:] == ["20000,180000,0.691,0.1,1", "19999,17", "20001,,,0.2,"]
    assert [p.name for p in tmp_path.iterdir()] == ["log.csv"]


def test_the_profile_picks_cpu_settings_on_a_cpu_and_flags_win(monkeypatch):
    from gan.config import PROFILES, settings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = settings({"genre": "g", "videos": "/v"})
    assert cfg.profile == "cpu" and (cfg.batch, cfg.ngf, cfg.lr, cfg.augment, cfg.upsample) == (
        PROFILES["cpu"]["batch"], PROFILES["cpu"]["ngf"], PROFILES["cpu"]["lr"], PROFILES["cpu"]["augment"], "resize")
    assert settings({"genre": "g", "videos": "/v", "batch": 32}).batch == 32
    assert settings({"genre": "g", "videos": "/v", "profile": "none"}).batch == TrainConfig().batch
    assert settings({"genre": "g", "videos": "/v", "device": "cuda"}).arch == "fastgan"
    fast = settings({"genre": "g", "videos": "/v", "arch": "fastgan"})  # the cpu profile, FastGAN
    assert fast.arch == "fastgan" and fast.size == 128  # FastGAN's smallest, not the profile's DCGAN 64 px
    assert cfg.d_norm == "batch" and settings({"genre": "g", "videos": "/v", "d_norm": "spectral"}).d_norm == "spectral"
    assert cfg.g_norm == "modulated" and settings({"genre": "g", "videos": "/v", "g_norm": "batch"}).g_norm == "batch"
    assert (fast.upsample, fast.g_norm, fast.d_norm) == ("deconv", "batch", "batch")  # not the profile's DCGAN layers
    assert settings({"genre": "g", "videos": "/v", "arch": "fastgan", "size": 256}).size == 256
    with pytest.raises(ValueError, match="upsample = 'bilinear' is DCGAN's setting: FastGAN's networks"):
        settings({"genre": "g", "videos": "/v", "arch": "fastgan", "size": 128, "upsample": "bilinear"})
    with pytest.raises(ValueError, match="d_norm = 'spectral' is DCGAN's setting"):
        settings({"genre": "g", "videos": "/v", "arch": "fastgan", "d_norm": "spectral"})
    with pytest.raises(ValueError, match="g_norm = 'modulated' is DCGAN's setting"):
        settings({"genre": "g", "videos": "/v", "arch": "fastgan", "g_norm": "modulated"})
    with pytest.raises(ValueError, match="g_norm 'layer' is not one of batch, modulated"):
        settings({"genre": "g", "videos": "/v", "g_norm": "layer"})
    with pytest.raises(ValueError, match="d_norm 'layer' is not one of batch, spectral"):
        settings({"genre": "g", "videos": "/v", "d_norm": "layer"})


def test_the_profile_fits_its_frame_rate_to_the_library_and_a_users_fps_wins(monkeypatch, genre_videos):
    from gan.config import MAX_CACHE_BYTES, MIN_FPS, PROFILES, fps_for_data, settings
    from gan.data import training_files
    from vj.core.media import library_size

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    six = PROFILES["cpu"]["fps"]
    assert fps_for_data(six, 12, 0, 64) == six                   # three short loops: as the profile says
    assert fps_for_data(six, 3600, 0, 64) == six                 # an hour of them at 64 px: 1 GB, as well
    hours = fps_for_data(six, 36000, 0, 256)                      # ten hours of loops at 256 px: sparser
    assert hours < six and 36000 * hours * 256 * 256 * 3 <= MAX_CACHE_BYTES * 1.01
    assert fps_for_data(six, 10**7, 0, 1024) == MIN_FPS         # and never sparser than MIN_FPS
    assert fps_for_data(six, 0, 40, 64) == six                   # stills alone: no frame rate to fit
    seconds, stills = library_size(training_files(genre_videos["plasma"]))
    assert stills == 0 and seconds == pytest.approx(3.0, abs=0.2)  # two 1.5 s loops
    for device in ("cpu", "cuda"):  # the gpu profile names no fps: the default's is fitted
        long = settings({"genre": "g", "videos": "/v", "device": device}, data=(360000, 0))  # 100 hours
        assert long.fps < (PROFILES["cpu"]["fps"] if device == "cpu" else TrainConfig().fps)
        assert 360000 * long.fps * long.size ** 2 * 3 <= MAX_CACHE_BYTES * 1.01
        assert settings({"genre": "g", "videos": "/v", "device": device}, data=(seconds, 0)).fps in (six, 10)
    assert settings({"genre": "g", "videos": "/v", "fps": 6}, data=(36000, 0)).fps == 6  # the user's wins
    assert settings({"genre": "g", "videos": "/v", "profile": "none"}, data=(36000, 0)).fps == TrainConfig().fps


def test_a_device_this_machine_lacks_is_one_line_for_training_walks_and_the_show(monkeypatch, tmp_path):
    from gan.model import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("cpu") == torch.device("cpu") and pick_device("auto").type in ("cpu", "mps")
    for name, said in (("cuda", "no CUDA device is available"), ("cuda:3", "no CUDA device is available"),
                       ("banana", "is not a device (auto, cpu, cuda, cuda:N or mps)")):
        with pytest.raises(ValueError, match=re.escape(said)):
            pick_device(name)
    from conftest import make_generator_ckpt

    make_generator_ckpt(tmp_path / "gan" / "g" / "ckpt.pt", 0)
    proc = run_vj("gan", "walk", "g", "--device", "banana", "--runs", str(tmp_path), "--seconds", "1")
    assert proc.returncode == 2 and "'banana' is not a device" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_vj("render", str(ROOT / "presets" / "scenes" / "demo.toml"), "--device", "banana", "--seconds", "1",
                  "--out", str(tmp_path / "x.mp4"))
    assert proc.returncode == 2 and "'banana' is not a device" in proc.stderr and not (tmp_path / "x.mp4").exists()


def test_precision_auto_is_bf16_on_a_gpu_and_for_fastgan_on_a_native_bf16_cpu(monkeypatch):
    import gan.train as train
    from vj.core.config import describe

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    for native in (False, True):
        monkeypatch.setattr(train, "native_cpu_bf16", lambda: native)
        assert train.trains_in_bf16(TrainConfig(arch="fastgan"), cpu) is native
        assert not train.trains_in_bf16(TrainConfig(arch="dcgan"), cpu)  # DCGAN's CPU step stays float32
        assert train.trains_in_bf16(TrainConfig(arch="dcgan"), gpu)
        assert not train.trains_in_bf16(TrainConfig(arch="fastgan", precision="fp32"), gpu)
        assert train.trains_in_bf16(TrainConfig(arch="dcgan", precision="bf16"), cpu)
    with pytest.raises(ValueError, match="precision 'fp16' is not one of auto, fp32, bf16"):
        TrainConfig(precision="fp16").validate()
    assert "(AVX512-BF16 or AMX); fp32 otherwise" in describe(TrainConfig)  # --help joins a comment's lines


def test_the_named_presets_spell_out_the_profiles_and_help_lists_them():
    from gan.config import PROFILES, describe_profiles, preset_values
    from vj.core.config import PRESETS

    for name, preset in (("cpu", "quick-cpu.toml"), ("gpu", "overnight-gpu.toml")):
        values = preset_values(PRESETS / "genres" / preset)
        assert values["profile"] == name
        assert {k: values[k] for k in PROFILES[name]} == PROFILES[name], preset  # no drift from the profile
    text = describe_profiles()
    assert all(f"  {name}" in text for name in PROFILES) and "batch 8" in text


def test_fastgan_trains_samples_resumes_bit_exact_and_runs_live(genre_videos, tmp_path):
    from gan.model import load_generator

    cfg = tiny_cfg(genre_videos["particles"], arch="fastgan", size=128, nz=32, ngf=8, ndf=8, batch=4, fps=4,
                   augment="color,translation", adaptive="color", kid_minutes=0,
                   precision="bf16")  # bit-exact under CPU autocast too
    straight, split = tmp_path / "a", tmp_path / "b"
    train_genre(replace(cfg, epochs=2), straight, progress=False)
    train_genre(replace(cfg, epochs=1), split, progress=False)
    train_genre(replace(cfg, epochs=2), split, resume=True, progress=False)
    a, b = state(straight), state(split)
    for net in ("G", "D", "G_ema"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    assert a["aug"][0] < 1 and torch.equal(a["aug"], b["aug"])  # the adaptive p moved, and resumed exactly
    assert (straight / "samples" / "epoch_00002.png").exists() and a["cfg"]["arch"] == "fastgan"
    G, noise = load_generator(straight / "ckpt.pt")
    # the live layer's frozen renderer on ONNX Runtime gives the torch images; made, as the layer makes it,
    # from a generator that has not run yet (its eval noise not yet drawn: the export must draw it)
    fast = BatchStatsRenderer(G, noise)
    ref = BatchStatsRenderer(G, noise, runtime="torch")
    assert G(noise[:2]).shape == (2, 3, 128, 128)
    z = torch.randn(1, 32)
    diff = (fast(z) - ref(z)).abs()  # in [-1, 1]: within half a uint8 level anywhere, far closer on average
    assert fast.runtime == "onnx" and diff.max() < 1 / 255 and diff.mean() < 3e-4


def test_a_learning_clip_has_the_length_asked_for(genre_videos, tmp_path):
    runs = tmp_path / "runs"
    run_vj("gan", "train", str(genre_videos["plasma"]), "--genre", "p", "--runs", str(runs), "--epochs", "2",
           *TINY, check=True)
    run_vj("gan", "clip", "p", "--runs", str(runs), "--seconds", "2.5", "--fps", "24", "--out", str(tmp_path / "c.mp4"),
           check=True)
    assert count_frames(tmp_path / "c.mp4") == 60  # 3 samples spread over 2.5 s at 24 fps
    from gan.config import settings, with_clip_length

    cfg = with_clip_length(settings({"genre": "g", "videos": "/v", "epochs": 20, "clip_seconds": 10}))
    assert cfg.samples_per_epoch == 15  # 300 frames at 30 fps from 20 epochs
    long = with_clip_length(settings({"genre": "g", "videos": "/v", "epochs": 20, "clip_seconds": 120}))
    assert long.samples_per_epoch == 180 and long.max_samples == 3600  # the run keeps all the clip asks for


def test_a_learning_clip_streams_its_samples_so_a_long_run_fits_in_memory(tmp_path):
    import tracemalloc

    from PIL import Image

    from gan.clips import learning_clip
    from vj.core.runs import GanRun

    run = GanRun(tmp_path / "r")
    run.samples.mkdir(parents=True)
    ramp = np.linspace(0, 255, 400, dtype=np.float32)
    for e in range(120):  # 120 grids of 400x400: 58 MB decoded, which the old clip held all at once
        img = (ramp[None, :, None] * 0.5 + e + np.zeros((400, 1, 3), np.float32)).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(run.samples / f"epoch_{e:05d}.png", compress_level=1)
    (run.samples / "epoch_00060.png").write_bytes(b"")  # a damaged one, mid-run: skipped, named
    for kw, frames in (({}, 119), ({"seconds": 2.0, "fps": 30}, 60)):
        tracemalloc.start()
        n = learning_clip(run, tmp_path / "c.mp4", progress=False, **kw)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert n == frames and count_frames(tmp_path / "c.mp4") == frames
        assert peak < 12e6, (kw, peak)  # a few frames at a time


def test_a_long_run_keeps_a_bounded_evenly_spread_set_of_samples_ending_on_its_last_state(genre_videos, tmp_path,
                                                                                         caplog):
    """Short epochs (a few dozen frames) write a grid several times a second: 1 GB in 12 CPU minutes, and
    on a GPU faster than the disk. The run keeps about max_samples, thinned by powers of two as it goes;
    and its epoch lines come every 10 s, not several a second."""
    import logging
    from gan.train import make_grid
    from vj.core.runs import GanRun

    run = GanRun(tmp_path / "r")
    cfg = tiny_cfg(genre_videos["plasma"], max_samples=4, singles=1)

    def epochs(latent=None):
        return [int(p.name[6:11]) for p in run.sample_files(latent)]

    (run.path / "samples").mkdir(parents=True)
    (run.path / "samples" / "epoch_notes.png").write_bytes(b"")  # not the run's: left alone
    with caplog.at_level(logging.INFO):
        train_genre(replace(cfg, epochs=9), run.path, progress=False)
    assert epochs() == epochs(0) == [0, 4, 8, 9]  # every 4th epoch by the end, and the last one
    lines = [r.getMessage() for r in caplog.records if " loss D " in r.getMessage()]
    assert [m.split()[2] for m in lines] == ["1/9", "2/9", "3/9", "9/9"], lines  # 9 short epochs in a few seconds
    assert sum("short epochs: a line every 10 s" in r.getMessage() for r in caplog.records) == 1
    train_genre(replace(cfg, epochs=12), run.path, resume=True, progress=False)
    assert epochs() == [0, 4, 8, 12] and (run.path / "samples" / "epoch_notes.png").exists()
    train_genre(replace(cfg, epochs=14, max_samples=0), run.path, resume=True, progress=False)
    assert epochs() == [0, 4, 8, 12, 13, 14]  # 0: every epoch from now on
    # a 512 px run's grid has 256 px tiles (a 4K clip's height), not 8,194 px of them
    assert make_grid(np.zeros((64, 512, 512, 3), np.uint8), tile=256).shape == (8 * 258 + 2, 8 * 258 + 2, 3)


def test_the_loss_plot_of_a_long_run_draws_bin_means_not_every_epoch(tmp_path, monkeypatch):
    import matplotlib.axes

    from gan.train import LOG_FIELDS, plot_losses

    rows = [",".join(LOG_FIELDS)] + [f"{e},{9 * e},{e % 2},1.0,0.5,0.5,300,{e},{0.5 if e % 60 == 0 else ''},"
                                     f"{0.01 if e % 60 == 0 else ''},," for e in range(1, 6001)]
    (tmp_path / "log.csv").write_text("\n".join(rows) + "\n")
    drawn = []
    plot = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", lambda ax, x, y, **kw: drawn.append((x, y)) or plot(ax, x, y, **kw))
    plot_losses(tmp_path / "log.csv", tmp_path / "loss.png")
    (_, d), (_, g), (_, kid) = drawn
    assert len(d) == len(g) == 1000 and np.allclose(d, 0.5) and len(kid) == 100  # 6 epochs a bin: D's 0, 1 averaged
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_the_quality_curve_is_logged_printed_and_scored(genre_videos, tmp_path):
    runs = tmp_path / "runs"
    proc = run_vj("gan", "train", str(genre_videos["tunnel"]), "--genre", "t", "--runs", str(runs), "--epochs", "6",
                  *TINY, "--set", "kid_epochs=2", check=True)
    rows = (runs / "gan" / "t" / "log.csv").read_text().splitlines()
    assert rows[0].split(",")[8:11] == ["kid", "kid_se", "spread"]
    kids = [r.split(",")[8] for r in rows[1:]]
    assert any(kids) and " KID " in proc.stderr
    proc = run_vj("gan", "score", "t", "--runs", str(runs), "--samples", "32", check=True)
    assert proc.stdout.startswith("t: KID ") and "at epoch 6" in proc.stdout


@pytest.mark.parametrize("size", [16, 17])
def test_cutout_zeroes_one_square_per_image_clipped_at_the_borders(size):
    """DiffAugment's cutout: each image loses one ratio-sized square (fewer pixels where it leaves the
    image), the same square in every channel, and nothing else changes."""
    from gan.augment import cutout

    torch.manual_seed(0)
    x = torch.rand(64, 3, size, size) + 1  # no zeros of its own
    out = cutout(x)
    side = int(size * 0.5 + 0.5)
    holes = out == 0
    assert torch.equal(holes[:, 0], holes[:, 1]) and torch.equal(holes[:, 0], holes[:, 2])
    assert torch.equal(out[~holes], x[~holes])
    counts = []
    for hole in holes[:, 0]:
        rows, cols = hole.any(1).nonzero().ravel(), hole.any(0).nonzero().ravel()
        assert len(rows) and len(cols) and len(rows) <= side and len(cols) <= side
        assert hole.sum() == len(rows) * len(cols)  # a rectangle
        assert torch.equal(rows, torch.arange(rows[0], rows[-1] + 1))  # contiguous
        assert rows[0] == 0 or rows[-1] == size - 1 or len(rows) == side  # short only at a border
        counts.append(int(hole.sum()))
    assert max(counts) == side * side and min(counts) < side * side  # whole inside, clipped at the edges


def test_an_adaptive_op_applies_to_a_share_p_of_the_images_and_the_others_to_all():
    from gan.augment import diff_augment

    torch.manual_seed(0)
    x = torch.rand(400, 3, 8, 8) * 2 - 1
    changed = lambda y: int(((y - x).abs().amax(dim=(1, 2, 3)) > 1e-6).sum())  # noqa: E731
    assert changed(diff_augment(x, "color", torch.tensor(0.0), "color")) == 0
    assert changed(diff_augment(x, "color", torch.tensor(1.0), "color")) == 400
    assert 160 < changed(diff_augment(x, "color", torch.tensor(0.5), "color")) < 240
    assert changed(diff_augment(x, "color")) == 400  # no p: the op applies to every image
    assert changed(diff_augment(x, "cutout,color", torch.tensor(0.0), "color")) == 400  # cutout is not adaptive


def test_the_adaptive_p_rises_while_d_calls_the_real_frames_real_and_falls_otherwise():
    from gan.augment import ADA_IMAGES, ada_update

    p, overfit = torch.zeros(()), torch.zeros(())
    for _ in range(20):  # D sure of every real frame: overfitting
        ada_update(p, overfit, torch.full((8, 1), 3.0), 8)
    assert overfit > 0.6 and 0 < p <= 20 * 8 / ADA_IMAGES
    rising = float(p)
    for _ in range(5):
        ada_update(p, overfit, torch.tensor([1.0, -1, 1, -1, 1, -1, 1, -1]), 8)  # half: not overfitting
    assert overfit < 0.6 and p < rising
    for _ in range(100):
        ada_update(p, overfit, -torch.ones(8), 8)
    assert p == 0  # never below 0
    p.fill_(0.999)
    for _ in range(100):
        ada_update(p, overfit, torch.ones(8), 8)
    assert p == 1  # nor above 1
    p.fill_(0.5)
    ada_update(p, overfit, torch.ones(8 * 50), 8)  # FastGAN's D: 50 logits an image; p moves by the images
    assert torch.isclose(p, torch.tensor(0.5 + 8 / ADA_IMAGES))


def test_adaptive_ops_come_from_the_policy_and_the_profile_keeps_a_users_policy(monkeypatch):
    from gan.config import settings

    with pytest.raises(ValueError, match=r"adaptive 'color' is not one of augment's ops \(translation\)"):
        TrainConfig(genre="g", augment="translation", adaptive="color").validate()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert settings({"genre": "g"}).adaptive == "color"  # the cpu profile's
    assert settings({"genre": "g", "augment": "translation"}).adaptive == ""  # not an error: colour is not asked for
    assert settings({"genre": "g", "augment": "cutout,color"}).adaptive == "color"
    assert settings({"genre": "g", "augment": "color", "adaptive": ""}).adaptive == ""


def test_the_settings_accept_exactly_the_augment_policies():
    """gan.config spells the policy names (settings load without torch): they stay those of gan.augment."""
    from gan.augment import POLICIES

    for name in POLICIES:
        TrainConfig(genre="g", augment=name).validate()
    with pytest.raises(ValueError, match=f"is not one of {', '.join(POLICIES)}"):
        TrainConfig(genre="g", augment="colour").validate()
