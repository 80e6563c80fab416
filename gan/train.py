"""The DCGAN training loop: resumable to the step, atomic checkpoints, a clip frame every epoch.

A run lives in ``runs/gan/<genre>/`` (see ``vj.core.runs``). ``ckpt.pt`` holds everything needed to continue
exactly: weights, optimiser states, config, epoch, step, position in the epoch, the fixed latent batch
and the RNG state. Data order is a pure function of (seed, epoch), so a resumed run sees the same
batches as one that never stopped.
"""
from __future__ import annotations

import bisect
import contextlib
import copy
import csv
import io
import logging
import math
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
import torch.nn.functional as F
from gan.augment import ada_update, diff_augment
from gan.config import SHAPE_KEYS, TrainConfig
from gan.data import NoUsableVideo, build_cache
from gan import fastgan
from gan.model import build_networks, load_checkpoint, pick_device
from gan.quality import QualityWorker, diagnose
from gan.walk import BatchStatsRenderer, to_uint8
from vj.core.media import MediaError
from vj.core.progress import Progress
from vj.core.priority import background_priority
from vj.core.runs import (DiskFull, GanRun, RunBusy, atomic_write_bytes, atomic_write_text, clean_temp, fill_log,
                          hold, log_columns, sample_key, save_image)
from vj.core.torchrun import rank_and_world as dist_info

log = logging.getLogger(__name__)
LOG_FIELDS = ["epoch", "step", "loss_d", "loss_g", "d_x", "d_g_z", "images_per_s", "elapsed_s", "kid", "kid_se",
              "spread", "aug_p"]


class TrainingDiverged(Exception):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class Outcome:
    genre: str
    status: str        # done, deadline, interrupted, failed
    epoch: int
    step: int
    message: str = ""


def cache_fits(nbytes: int, free: int) -> bool:
    """Whether a frame cache of ``nbytes`` goes on a GPU with ``free`` bytes: at most half of it, the rest
    is for the networks' activations (FastGAN at 1024 px needs several GB)."""
    return nbytes <= free // 2


def deadline_from(cfg: TrainConfig, now: float | None = None) -> float | None:
    """Seconds-since-epoch at which training must stop, from ``hours`` or ``until`` (HH:MM)."""
    now = time.time() if now is None else now
    limits = []
    if cfg.hours > 0:
        limits.append(now + cfg.hours * 3600)
    if cfg.until:
        try:
            hh, mm = (int(x) for x in cfg.until.split(":"))
            start = datetime.fromtimestamp(now)
            stop = start.replace(hour=hh, minute=mm, second=0, microsecond=0)
        except ValueError:
            raise ValueError(f"--until {cfg.until!r}: expected HH:MM") from None
        if stop <= start:
            stop += timedelta(days=1)
        limits.append(stop.timestamp())
    return min(limits) if limits else None


# ---------------------------------------------------------------- distributed (torchrun) helpers
def _init_dist(device: torch.device) -> None:
    import torch.distributed as dist

    if dist_info()[1] > 1 and not dist.is_initialized():
        # DDP imports torch._dynamo, and an import of it after the group exists keeps module-level
        # references to the group: destroy_process_group then cannot free it (close_dist)
        import torch._dynamo.utils  # noqa: F401

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def close_dist() -> None:
    """Every rank, after its queue: wait for the others, then leave the process group, which joins Gloo's
    worker threads. A group still alive at exit is freed while the interpreter shuts down, and a rank whose
    run succeeded can die there with SIGABRT ("terminate called without an active exception"), failing the
    whole torchrun (_init_dist makes sure nothing else holds the group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# ---------------------------------------------------------------- the trainer
def native_cpu_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), as torch's oneDNN sees it."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def trains_in_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """``precision`` on ``device``: auto is bf16 on a GPU, and for FastGAN on a CPU with native bfloat16 (its
    128 px step 1.4x faster, and a lower KID after 15 minutes: scripts/bench/RESULTS.md); DCGAN's small
    CPU step stays in float32."""
    if cfg.precision != "auto":
        return cfg.precision == "bf16"
    return device.type == "cuda" or (cfg.arch == "fastgan" and native_cpu_bf16())


def draw_part() -> int:
    """FastGAN's quarter (0-3) for the discriminator to reconstruct this step, from torch's host RNG."""
    return int(torch.randint(0, 4, (1,)).item())


class Trainer:
    def __init__(self, run_dir: Path | GanRun, cfg: TrainConfig, resume: bool = False, progress: bool | None = None):
        """``progress``: None shows a bar on a terminal (lines otherwise), False lines only."""
        self.run = GanRun.at(run_dir)
        self.run_dir = self.run.path
        self.ckpt_path = self.run.ckpt
        self.progress = progress
        self.rank, self.world = dist_info()
        if self.rank == 0:
            clean_temp(self.run_dir)  # what a killed writer left (a temp file on a full disk blocked resumes)
        ckpt = None
        if self.ckpt_path.exists():
            if not resume:
                raise FileExistsError(f"{self.run_dir} already has a checkpoint: add --resume to continue it, "
                                      f"or pick another --genre/--runs")
            try:
                ckpt = load_checkpoint(self.ckpt_path)
            except ValueError as exc:
                raise ValueError(f"{exc}: restore it from a backup, or move {self.run_dir} away to start the "
                                 f"genre over") from None
            # a key an older version did not write has the value it always had: the default
            shape = {k: ckpt["cfg"].get(k, getattr(TrainConfig, k)) for k in SHAPE_KEYS}
            wrong = [k for k in SHAPE_KEYS if shape[k] != getattr(cfg, k)]
            if wrong:
                raise ValueError(f"{self.ckpt_path}: the checkpoint has {wrong[0]} = {shape[wrong[0]]!r}, the "
                                 f"run's settings say {getattr(cfg, wrong[0])!r}")
        self.cfg = cfg.validate()
        self.device = pick_device(cfg.device)
        _init_dist(self.device)
        torch.manual_seed(cfg.seed)
        self.fastgan = cfg.arch == "fastgan"
        self.G, self.D = build_networks(cfg)
        # the run shows an exponential moving average of its generator's weights (smoother, sharper; 0: off)
        self.G_ema = copy.deepcopy(self.G).eval() if cfg.ema > 0 else None
        self.fixed_noise = torch.randn(cfg.n_fixed, cfg.nz, generator=torch.Generator().manual_seed(cfg.seed + 1))
        self.epoch = self.step = self.batch_in_epoch = 0
        on_gpu = self.device.type == "cuda"
        # channels_last for eager convolutions; under torch.compile inductor chooses layouts itself (and
        # channels_last weights trip its ConvTranspose backward)
        self.G.to(self.device)
        self.D.to(self.device)
        if self.G_ema is not None:
            self.G_ema.to(self.device)
        # the average's step weight (1 - decay), a device tensor that a captured step reads at every replay
        self._ema_weight = torch.zeros((), device=self.device)
        # the adaptive augmentation's probability and D's overfitting signal (gan.augment), updated by each step
        # on the device; under torchrun each process follows its own batches, and a resume gives all rank 0's.
        # p starts at 1, the whole policy, and falls where D does not overfit (ADA starts at 0: measured
        # against it in RESULTS.md)
        self.aug_p = torch.ones((), device=self.device)
        self._overfit = torch.zeros((), device=self.device)
        self.compiled = cfg.compile and not self.fastgan and self._compiles(on_gpu)
        mem = torch.contiguous_format if self.compiled else torch.channels_last
        self.G.to(memory_format=mem)
        self.D.to(memory_format=mem)
        # a DCGAN step is ~500 small kernels, a FastGAN step ~5,700: on a GPU their launches, not the math, set
        # the pace. So the whole step (forward, backward, Adam) is captured once as a CUDA graph and replayed
        # every step. FastGAN's discriminator reconstructs a random quarter, picked on the host: one graph per
        # quarter, all four in one memory pool (they replay one at a time on one stream).
        self.graphed = on_gpu and cfg.cuda_graph and self.world == 1 and not self.compiled
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._graph_store = None
        self._warm_steps = 0
        # fused Adam: one kernel per step instead of one per parameter tensor (on the 2-core CPU 0.37 ms for both
        # DCGAN optimisers against 1.2-1.6); capturable: inside a graph
        fused = True if self.device.type in ("cuda", "cpu") else None
        adam = dict(lr=cfg.lr, betas=(cfg.beta1, 0.999), fused=fused, capturable=self.graphed)
        self.optG = torch.optim.Adam(self.G.parameters(), **adam)
        self.optD = torch.optim.Adam(self.D.parameters(), **adam)
        if on_gpu:
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolution once
        if ckpt is not None:
            self._restore(ckpt)
        self.first_epoch = self.epoch  # for the ETA of this session
        # no autocast weight cache: a captured graph must re-cast the weights Adam updates in place
        self.bf16 = trains_in_bf16(cfg, self.device)
        self.amp = contextlib.nullcontext() if not self.bf16 else \
            torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not self.graphed) if on_gpu else \
            torch.autocast("cpu", dtype=torch.bfloat16)
        if self.bf16 and not on_gpu and self.rank == 0:
            log.info("%s: training in bfloat16, which this CPU computes natively (--set precision=fp32 for float32)",
                     cfg.genre)
        # sample PNGs are encoded on a worker while training goes on (one worker: written in order)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="samples", initializer=background_priority) \
            if self.rank == 0 else None
        self._writes: list = []
        self.G_train, self.D_train = self.G, self.D
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G_train, self.D_train = DDP(self.G, device_ids=ids), DDP(self.D, device_ids=ids)
        if self.compiled:
            self.G_train, self.D_train = torch.compile(self.G_train), torch.compile(self.D_train)
        self._stop_requested = False
        self.quality: QualityWorker | None = None  # the KID curve's worker, while a run trains

    def _compiles(self, on_gpu: bool) -> bool:
        """Whether torch.compile can train these networks here: one forward and backward of compiled copies
        (weights and RNG untouched). Where it cannot (inductor on torch 2.11 + CUDA failed on DCGAN's
        ConvTranspose backward with channels_last tensors), one warning and the run goes on eagerly instead
        of crashing at step 1."""
        import copy

        import torch._inductor.config as inductor

        inductor.layout_optimization = False  # its channels_last ConvTranspose backward is what fails
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu else contextlib.nullcontext()
        try:
            with torch.random.fork_rng(devices=[self.device] if on_gpu else []):
                g, d = torch.compile(copy.deepcopy(self.G)), torch.compile(copy.deepcopy(self.D))
                b, size = self.cfg.batch, self.cfg.size
                real = torch.rand(b, 3, size, size, device=self.device) * 2 - 1  # as _batch gives it
                with amp:  # the step's three passes: D on real, D on fake, G through D
                    out = d(real).float().mean() + d(g(torch.randn(b, self.cfg.nz, device=self.device))).float().mean()
                out.backward()
            return True
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: train eagerly
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            log.warning("%s: torch.compile cannot train this model with torch %s on %s (%s); training without "
                        "it", self.cfg.genre, torch.__version__, self.device.type, reason)
            return False

    # -- checkpoints
    def _restore(self, ckpt: dict) -> None:
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        if self.G_ema is not None:  # a checkpoint from before the average: it starts at the generator
            self.G_ema.load_state_dict(ckpt.get("G_ema") or ckpt["G"])
        self.optG.load_state_dict(ckpt["optG"])
        self.optD.load_state_dict(ckpt["optD"])
        self.fixed_noise = ckpt["fixed_noise"]
        if "aug" in ckpt:  # (p, overfitting signal); a checkpoint from before adaptive augmentation has none
            self.aug_p.copy_(ckpt["aug"][0])
            self._overfit.copy_(ckpt["aug"][1])
        self.epoch, self.step, self.batch_in_epoch = ckpt["epoch"], ckpt["step"], ckpt["batch_in_epoch"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        if torch.cuda.is_available() and ckpt["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])

    def save(self) -> None:
        """The checkpoint, atomically (a kill or a full disk keeps the previous one)."""
        if self.rank != 0:
            return
        self.wait_samples()  # a checkpoint never points past samples that are not on disk
        state = {
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "optG": self.optG.state_dict(), "optD": self.optD.state_dict(),
            "cfg": self.cfg.to_dict(), "epoch": self.epoch, "step": self.step,
            "batch_in_epoch": self.batch_in_epoch, "fixed_noise": self.fixed_noise,
            "aug": torch.stack([self.aug_p, self._overfit]).cpu(),
            **({"G_ema": self.G_ema.state_dict()} if self.G_ema is not None else {}),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "version": 1,
        }
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(self.ckpt_path, buf.getvalue())

    # -- samples: one grid + one frame per chosen latent, named so that sorting gives time order
    def sample_name(self, k: int, per_epoch: int) -> str:
        """``epoch_00003-01.png`` ... ``epoch_00003.png``: '-' sorts before '.', so names sort in time order."""
        return f"epoch_{self.epoch:05d}.png" if k == per_epoch else f"epoch_{self.epoch + 1:05d}-{k:02d}.png"

    @torch.no_grad()
    def write_samples(self, name: str) -> None:
        if self.rank != 0:
            return
        with self.amp:  # batch statistics as in training, without touching the running averages
            images = BatchStatsRenderer(self.shown, size=0, runtime="torch")(self.fixed_noise)
        self._writes = [f for f in self._writes if not f.done() or f.result()]  # re-raise a failed write
        # On a GPU the worker brings the images to the host, so the loop never waits for the GPU here. On the
        # CPU they are converted here: a torch op on a second thread fights the step's own threads for the
        # cores (on 2 cores that cost 40% of the steps), and only PNG encoding is left to the worker.
        if self.device.type == "cpu":
            images = to_uint8(images)
        size = images.nbytes if isinstance(images, np.ndarray) else images.element_size() * images.nelement()
        while len(self._writes) >= max(2, PENDING_BYTES // size):  # the writer behind: wait, never pile up
            self._writes.pop(0).result()
        self._writes.append(self._writer.submit(self._save_samples, images, name))

    def _save_samples(self, images: torch.Tensor | np.ndarray, name: str) -> None:
        u8 = images if isinstance(images, np.ndarray) else to_uint8(images)  # (B, S, S, 3)
        self.run.samples.mkdir(parents=True, exist_ok=True)
        # atomic, never half-written; fast zlib: the writer shares the cores with training
        save_image(self.run.sample_dir() / name, make_grid(u8, tile=GRID_TILE), fast=True)
        for j in range(min(self.cfg.singles, len(u8))):
            self.run.sample_dir(j).mkdir(exist_ok=True)
            save_image(self.run.sample_dir(j) / name, u8[j], fast=True)

    def sample_stride(self, epoch: int) -> int:
        """Every how many epochs the run keeps samples once it has trained ``epoch`` epochs: 1, then 2, 4...
        (a power of two), so that at most about ``max_samples`` stay, evenly spread over the whole run."""
        if not self.cfg.max_samples:
            return 1
        need = -(-self.cfg.samples_per_epoch * epoch // self.cfg.max_samples)  # ceil
        return 1 << (max(1, need) - 1).bit_length()

    def keeps(self, epoch: int) -> bool:
        """Whether the samples of ``epoch`` (the grid at its end, and those during it) are kept."""
        return epoch % self.sample_stride(epoch) == 0

    def prune_samples(self, stride: int) -> None:
        """On the writer (after the writes before it), remove the samples of epochs off the ``stride``."""
        if self.rank != 0 or stride <= 1:
            return

        def prune():
            for latent in (None, *range(self.cfg.singles)):
                for f in self.run.sample_files(latent):  # the run's own names only
                    if sample_key(f.name)[0] % stride:
                        f.unlink(missing_ok=True)
        self._writes.append(self._writer.submit(prune))

    def wait_samples(self) -> None:
        """Block until every sample handed to the writer is on disk (re-raises a failed write)."""
        for f in self._writes:
            f.result()
        self._writes = []

    # -- one optimisation step
    @property
    def shown(self) -> torch.nn.Module:
        """The generator whose images the run shows: its weight average, else (``ema`` 0) the generator."""
        return self.G_ema if self.G_ema is not None else self.G

    def ema_decay(self, step: int) -> float:
        """The average's decay at (0-based) ``step``: ``ema``, ramped up from 0.1 as (1 + step) / (10 + step).
        With a fixed 0.999 the average of a 350-step run is still 70% its initial weights (0.999^350) and
        hides what the run learned; the ramp makes it span about a tenth of the steps so far, up to ``ema``."""
        return min(self.cfg.ema, (1 + step) / (10 + step))

    @torch.no_grad()
    def _average(self) -> None:
        """The shown generator: an exponential moving average of G's weights (buffers copied), weighted by
        ``_ema_weight``, which ``train_batch`` sets before the step (a tensor, so a CUDA graph reads it)."""
        if self.G_ema is None:
            return
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p, self._ema_weight)
        for b_ema, b_ in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b_)

    def train_step(self, real: torch.Tensor, part: int | None = None) -> torch.Tensor:
        """One D and one G update; returns (loss_d, loss_g, D(x), D(G(z)), the adaptive augmentation's p) on
        the device, unsynchronised.
        ``part``: FastGAN's quarter to reconstruct (None: drawn here)."""
        return self._fastgan_step(real, part) if self.fastgan else self._dcgan_step(real)

    def _dcgan_step(self, real: torch.Tensor) -> torch.Tensor:
        """DCGAN's step: BCE on logits, real and fake in separate D calls (BatchNorm's batches, as DCGAN)."""
        cfg, b = self.cfg, real.shape[0]
        aug = self._augment
        z = torch.randn(b, cfg.nz, device=self.device)
        ones, zeros = torch.ones(b, device=self.device), torch.zeros(b, device=self.device)
        with self.amp:
            fake = self.G_train(z)
        # D: real and fake in separate calls (as DCGAN); under DDP one gradient all-reduce
        self.optD.zero_grad(set_to_none=True)
        no_sync = self.D_train.no_sync if self.world > 1 else contextlib.nullcontext
        with no_sync():
            with self.amp:
                out_real = self.D_train(aug(real)).float()
                loss_real = F.binary_cross_entropy_with_logits(out_real, ones)
            loss_real.backward()
        with self.amp:
            out_fake = self.D_train(aug(fake.detach())).float()
            loss_fake = F.binary_cross_entropy_with_logits(out_fake, zeros)
        loss_fake.backward()
        self.optD.step()
        # G: through the bare D (no all-reduce of D's gradients, which are discarded)
        self.optG.zero_grad(set_to_none=True)
        with self.amp:
            loss_g = F.binary_cross_entropy_with_logits(self.D(aug(fake)).float(), ones)
        loss_g.backward()
        self.optG.step()
        self._average()
        self._adapt(out_real, b)
        loss_d = loss_real + loss_fake
        return torch.stack([loss_d.detach(), loss_g.detach(), torch.sigmoid(out_real).mean().detach(),
                            torch.sigmoid(out_fake).mean().detach(), self.aug_p.clone()])

    def _fastgan_step(self, real: torch.Tensor, part: int | None = None) -> torch.Tensor:
        """FastGAN's step: hinge loss at two scales, D's reconstructions of real images (whole, small and a
        random quarter) as its self-supervision; G's weight average follows after the step. D(x) and D(G(z))
        are reported as the share of logits on the right side of 0 (hinge logits are not probabilities)."""
        cfg, b = self.cfg, real.shape[0]
        aug = self._augment
        z = torch.randn(b, cfg.nz, device=self.device)
        if part is None:
            part = draw_part()
        with self.amp:
            fake, fake_small = self.G_train(z, both=True)
        real = aug(real)
        real_small = F.interpolate(real, size=128, mode="bilinear", align_corners=False) if real.shape[2] != 128 else real
        self.optD.zero_grad(set_to_none=True)
        no_sync = self.D_train.no_sync if self.world > 1 else contextlib.nullcontext
        with no_sync():
            with self.amp:
                out_real, recs = self.D_train(real, real_small, part)
                loss_real = F.relu(1 - out_real.float()).mean() + fastgan.reconstruction_loss(recs, real, real_small, part)
            loss_real.backward()
        fake_d, fake_small_d = aug(fake.detach()), aug(fake_small.detach())
        with self.amp:
            out_fake = self.D_train(fake_d, fake_small_d).float()
            loss_fake = F.relu(1 + out_fake).mean()
        loss_fake.backward()
        self.optD.step()
        self.optG.zero_grad(set_to_none=True)
        with self.amp:
            loss_g = -self.D(aug(fake), aug(fake_small)).float().mean()
        loss_g.backward()
        self.optG.step()
        self._average()
        self._adapt(out_real, b)
        return torch.stack([(loss_real + loss_fake).detach(), loss_g.detach(),
                            (out_real.detach().float() > 0).float().mean(), (out_fake.detach() > 0).float().mean(),
                            self.aug_p.clone()])

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """DiffAugment before D, real and fake alike (the adaptive ops with the current p)."""
        return diff_augment(x, self.cfg.augment, self.aug_p, self.cfg.adaptive) if self.cfg.augment else x

    def _adapt(self, out_real: torch.Tensor, images: int) -> None:
        """After the step (which used one p for real, fake and G): move p by D's logits on the real images."""
        if self.cfg.adaptive:
            ada_update(self.aug_p, self._overfit, out_real, images)

    def train_batch(self, store, idx) -> torch.Tensor:
        """One training step on the frames ``store[idx]``; through the CUDA graph where the trainer uses one.

        ``store`` is the cache (a uint8 tensor on the GPU, else the memory-mapped array), ``idx`` the batch's
        frame indices (a device tensor with a GPU store). The graph includes the gather, so a step costs
        one index copy and one replay, and never waits for the GPU.
        """
        self._ema_weight.fill_(1 - self.ema_decay(self.step))
        if not self.graphed:
            return self.train_step(self._batch(store, idx))
        key = draw_part() if self.fastgan else 0  # the graph to replay: FastGAN has one per quarter
        if self._graph_store is not store:
            self._graphs, self._graph_store = {}, store  # another cache: capture again
            self._idx = idx.clone()
        else:
            self._idx.copy_(idx)
        part = key if self.fastgan else None
        if key not in self._graphs:
            if self._warm_steps < 3:  # real steps, eager, on a side stream: cuDNN and the allocator settle
                self._warm_steps += 1
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    stats = self.train_step(self._batch(store, self._idx), part)
                torch.cuda.current_stream().wait_stream(side)
                return stats
            graph = torch.cuda.CUDAGraph()
            pool = next(iter(self._graphs.values()))[0].pool() if self._graphs else None
            with torch.cuda.graph(graph, pool=pool):  # records the step; nothing runs until replay
                self._graphs[key] = (graph, self.train_step(self._batch(store, self._idx), part))
        graph, stats = self._graphs[key]
        graph.replay()
        return stats.clone()

    def epoch_batches(self, order: np.ndarray, batch: int, steps: int, resident: bool):
        """This process's batches of an epoch, (steps, batch) frame indices, each row sorted (cache locality);
        with the cache on the GPU uploaded once per epoch, so no step waits for a host-to-device copy."""
        rows = order[:steps * self.world * batch].reshape(steps * self.world, batch)[self.rank::self.world]
        rows = np.sort(rows, axis=1)
        return torch.from_numpy(rows).pin_memory().to(self.device, non_blocking=True) if resident else rows

    def read_stats(self, pending: list[torch.Tensor], first_step: int) -> np.ndarray:
        """Bring the stats of the steps since the last check to the host (one sync); raise on NaN/inf."""
        stats = torch.stack(pending).float().cpu().numpy()
        bad = ~np.isfinite(stats[:, :2]).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            v = stats[i, 0] if not np.isfinite(stats[i, 0]) else stats[i, 1]
            raise TrainingDiverged(f"loss became {v} at epoch {self.epoch + 1}, step {first_step + i + 1}")
        return stats

    # -- the loop
    def request_stop(self, *_):
        self._stop_requested = True

    def _agreed_stop(self, deadline: float | None, every: int = 1) -> bool:
        """Whether to stop now: Ctrl-C, or the deadline passed. Under torchrun every process must stop at the
        same step, or the others wait in the next step's all-reduce for ever (a deadline read from each
        process's clock, or one process's Ctrl-C, falls between their checks sooner or later). So they agree
        every ``every`` steps, on any one's reason; their step counts are the same."""
        want = self._stop_requested or bool(deadline and time.time() > deadline)
        if self.world == 1:
            return want
        if self.step % every:
            return False
        import torch.distributed as dist

        flag = torch.tensor([float(want)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def fit(self, frames: np.ndarray, active: np.ndarray, deadline: float | None = None) -> Outcome:
        failed = True
        try:
            outcome = self._fit(frames, active, deadline)
            failed = False
            return outcome
        finally:
            if self.quality is not None:
                self.quality.close()
            if self.rank == 0:
                # after a failure these must not hide it (a read-only disk fails them too)
                with contextlib.suppress(Exception) if failed else contextlib.nullcontext():
                    self.wait_samples()
                    if self.run.log.exists():
                        plot_losses(self.run.log, self.run.loss_plot)

    def _fit(self, frames: np.ndarray, active: np.ndarray, deadline: float | None) -> Outcome:
        cfg = self.cfg
        n = len(active)
        batch = min(cfg.batch, max(1, n // self.world))
        steps = max(1, n // (batch * self.world))
        if self.batch_in_epoch > steps:  # the frames changed under a resumed run (videos removed)
            log.warning("%s: the checkpoint is at step %d of an epoch that now has %d steps; finishing the epoch",
                        cfg.genre, self.batch_in_epoch, steps)
            self.batch_in_epoch = steps
        sample_at = {max(1, round(k * steps / cfg.samples_per_epoch)): k for k in range(1, cfg.samples_per_epoch + 1)}
        on_gpu = self.device.type == "cuda"
        # the whole cache on the GPU as uint8 when it fits: the input pipeline disappears. When it does not
        # (1024 px frames of a long library on a 24 GB card), batches come from host memory, step by step
        resident = on_gpu and self._cache_fits(frames.nbytes)
        store = self.upload(frames) if resident else frames
        self.graphed = self.graphed and resident  # the graph gathers from a device cache
        # a GPU runs ahead of Python: losses come back (and are checked) every few steps, not every step
        sync_every = 25 if on_gpu else 1
        if self.epoch == 0 and self.batch_in_epoch == 0:
            self.write_samples("epoch_00000.png")
        self.prune_samples(self.sample_stride(self.epoch))  # a resumed run's: max_samples may be new
        last_ckpt = last_plot = time.time()
        t_start = time.time()
        status = "done"
        self._write_config()
        self._repair_log()
        self.quality = QualityWorker(frames, active) if self.rank == 0 and (cfg.kid_minutes or cfg.kid_epochs) \
            else None
        history: list[dict] = []
        warned: set[str] = set()
        last_kid = -1e18
        last_line, said_short = 0.0, False  # the last epoch line's time; whether the run said it thins them
        scheduled = False  # a measurement was due during the run: it ends with one of its final state
        if self.quality is not None and self.epoch == 0 and self.batch_in_epoch == 0:
            self.quality.submit(self.shown, 0)  # the curve starts at the untrained generator
            last_kid = time.time()
        epochs = cfg.epochs or 10**12  # 0: until the deadline
        while self.epoch < epochs:
            order = active[torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100003 + self.epoch)).numpy()]
            batches = self.epoch_batches(order, batch, steps, resident)
            bar = Progress(steps, f"{cfg.genre} {self._epoch_label(self.epoch + 1, deadline)}", "step",
                           bar=False if self.progress is False or self.rank != 0 else None, initial=self.batch_in_epoch,
                           every=30.0 if self.rank == 0 else float("inf"))
            sums, t0, done_here, ips = np.zeros(5), time.time(), 0, 0.0
            pending: list[torch.Tensor] = []

            def check() -> None:
                nonlocal sums
                if not pending:
                    return
                stats = self.read_stats(pending, self.step - len(pending))
                sums += stats.sum(axis=0)
                d, g, dx, dgz, _ = stats[-1]
                bar.update(len(pending), D=f"{d:.3f}", G=f"{g:.3f}", Dx=f"{dx:.2f}", DGz=f"{dgz:.2f}", ips=f"{ips:.0f}")
                pending.clear()

            while self.batch_in_epoch < steps:
                pending.append(self.train_batch(store, batches[self.batch_in_epoch]))
                self.step += 1
                self.batch_in_epoch += 1
                done_here += 1
                ips = done_here * batch * self.world / max(1e-9, time.time() - t0)
                if len(pending) >= sync_every:
                    check()
                k = sample_at.get(self.batch_in_epoch)
                if k is not None and k < cfg.samples_per_epoch and self.keeps(self.epoch + 1):
                    self.write_samples(self.sample_name(k, cfg.samples_per_epoch))
                if self.batch_in_epoch < steps and time.time() - last_ckpt > cfg.ckpt_minutes * 60:
                    check()  # never checkpoint weights a NaN has reached
                    self.save()
                    last_ckpt = time.time()
                if self._agreed_stop(deadline, sync_every):
                    break
            check()
            bar.close()
            if self.batch_in_epoch < steps:  # stopped mid-epoch
                self.save()
                status = "interrupted" if self._stop_requested else "deadline"
                break
            self.epoch += 1
            self.batch_in_epoch = 0
            if self.sample_stride(self.epoch) > self.sample_stride(self.epoch - 1):
                self.prune_samples(self.sample_stride(self.epoch))  # queued first: it never takes this epoch's
            stopping = self._agreed_stop(deadline) and self.epoch < epochs
            ending = stopping or self.epoch >= epochs  # this epoch is the run's last
            if self.keeps(self.epoch) or ending:  # the clip always ends on the run's last state
                self.write_samples(self.sample_name(cfg.samples_per_epoch, cfg.samples_per_epoch))
            means = sums / max(1, done_here)
            # the epoch's log row goes first: a checkpoint never points past a row that is not on disk
            self._log_epoch(means, ips, time.time() - t_start)
            history.append({"epoch": self.epoch, "d_g_z": float(means[3]), "kid": None, "spread": None})
            if len(history) > 256:  # short epochs: the measured rows and the recent ones, not 10^5-10^6 rows
                history[:] = [r for r in history[:-128] if r["kid"] is not None] + history[-128:]
            measured = self._record_quality(history)
            quality = measured[-1] if measured else None
            if self.quality is not None and (cfg.kid_epochs and self.epoch % cfg.kid_epochs == 0 or not cfg.kid_epochs
                                             and time.time() - last_kid >= cfg.kid_minutes * 60):
                scheduled = True
                if self.quality.submit(self.shown, self.epoch):  # False while the last one still runs
                    last_kid = time.time()
            # short (GPU) epochs: a checkpoint every ckpt_minutes, not every epoch (110 MB each at 96 px)
            if ending or time.time() - last_ckpt >= cfg.ckpt_minutes * 60:
                self.save()
                last_ckpt = time.time()
            if time.time() - last_plot > 60:
                plot_losses(self.run.log, self.run.loss_plot)
                last_plot = time.time()
            # short epochs (a few dozen frames: several a second) get a line every LINE_SECONDS, not a scroll
            # of them; the first ones, a new KID, the last one and every epoch in log.csv stay
            if self.rank == 0 and not (quality or ending or self.epoch <= 3 or time.time() - last_line >= LINE_SECONDS):
                if not said_short:
                    said_short = True
                    log.info("%s: short epochs: a line every %d s from here (every epoch is in log.csv)", cfg.genre,
                             LINE_SECONDS)
            elif self.rank == 0:
                last_line = time.time()
                kid_text = f" KID {quality[1]} (epoch {quality[0]})" if quality else ""
                aug_text = f" {cfg.adaptive} p {means[4]:.2f}" if cfg.adaptive else ""
                bar.line(f"{cfg.genre}: {self._epoch_label(self.epoch, deadline)} loss D {means[0]:.3f} G {means[1]:.3f} "
                         f"D(x) {means[2]:.2f} D(G(z)) {means[3]:.2f}{aug_text} {ips:.0f} img/s{kid_text}"
                         f"{self._eta(deadline, t_start)}")
            if self.rank == 0:
                advice = diagnose(history, self.quality.real_spread if self.quality else 0.0)
                if advice and advice[:30] not in warned:
                    warned.add(advice[:30])
                    log.warning("%s: %s", cfg.genre, advice)
            if stopping:
                status = "interrupted" if self._stop_requested else "deadline"
                break
        if self.quality is not None and scheduled and status in ("done", "deadline"):
            self.quality.wait()  # the run's final state gets its measurement (a few seconds on a CPU)
            self._record_quality(history)
            if not any(r["epoch"] == self.epoch and r["kid"] is not None for r in history):
                self.quality.submit(self.shown, self.epoch)
                self.quality.wait()
                done = self._record_quality(history)
                if done and self.rank == 0:
                    log.info("%s: KID %s at epoch %d", cfg.genre, done[-1][1], done[-1][0])
        return Outcome(cfg.genre, status, self.epoch, self.step)

    def _record_quality(self, history: list[dict]) -> list:
        """Write finished measurements into the log rows of the epochs they measured (epoch 0 gets a row of
        its own: the curve's start); returns them."""
        done = self.quality.take() if self.quality is not None else []
        if not done or self.rank != 0:
            return done
        for epoch, k, sp in done:
            row = next((r for r in reversed(history) if r["epoch"] == epoch), None)
            if row is None:  # the curve's start, or an epoch already trimmed away
                row = {"epoch": epoch, "d_g_z": None}
                bisect.insort(history, row, key=lambda r: r["epoch"])
            row["kid"], row["spread"] = k.value, sp
        if not self.run.log.exists():
            atomic_write_text(self.run.log, ",".join(LOG_FIELDS) + "\n")
        fill_log(self.run.log, {epoch: {"kid": f"{k.value:.6f}", "kid_se": f"{k.se:.6f}", "spread": f"{sp:.4f}",
                                        **({"step": "0"} if epoch == 0 else {})} for epoch, k, sp in done})
        return done

    def _epoch_label(self, epoch: int, deadline: float | None) -> str:
        """``epoch 4/25``, or for a run that ends at a deadline ``epoch 4 (until 07:30, 2h10m left)``."""
        if self.cfg.epochs and not deadline:
            return f"epoch {epoch}/{self.cfg.epochs}"
        if deadline:
            left = max(0, int(deadline - time.time()))
            until = datetime.fromtimestamp(deadline).strftime("%H:%M")
            total = f"/{self.cfg.epochs}" if self.cfg.epochs else ""
            span = f"{left // 3600}h{left % 3600 // 60:02d}m" if left >= 3600 else f"{left // 60}m{left % 60:02d}s"
            return f"epoch {epoch}{total} (until {until}, {span} left)"
        return f"epoch {epoch}"

    def _eta(self, deadline, t_start) -> str:
        if not self.cfg.epochs:
            return ""
        left = self.cfg.epochs - self.epoch
        if left <= 0:
            return ""
        per_epoch = (time.time() - t_start) / max(1, self.epoch - self.first_epoch)
        eta = left * per_epoch
        if deadline:
            eta = min(eta, deadline - time.time())
        return f", ETA {timedelta(seconds=int(max(0, eta)))}"

    def _cache_fits(self, nbytes: int) -> bool:
        free, _ = torch.cuda.mem_get_info(self.device)
        if cache_fits(nbytes, free):
            return True
        log.warning("%s: the frame cache (%.1f GB) is over half the GPU's free memory (%.1f GB): batches are "
                    "copied from host memory each step, slower (a lower --fps or --size keeps it on the GPU)",
                    self.cfg.genre, nbytes / 1e9, free / 1e9)
        return False

    def upload(self, frames: np.ndarray, chunk: int = 4096) -> torch.Tensor:
        """The (memory-mapped) uint8 cache onto the device in chunks: no second full copy in RAM."""
        store = torch.empty(frames.shape, dtype=torch.uint8, device=self.device)
        for i in range(0, len(frames), chunk):
            store[i:i + chunk].copy_(torch.from_numpy(np.array(frames[i:i + chunk])))
        return store

    def _batch(self, store, idx) -> torch.Tensor:
        if isinstance(store, torch.Tensor):
            u8 = store[torch.as_tensor(idx, device=self.device)]
        else:  # the memory-mapped cache (on a GPU: one too large to keep there)
            u8 = torch.from_numpy(np.ascontiguousarray(store[idx])).to(self.device, non_blocking=True)
        # (B, S, S, 3) uint8 -> (B, 3, S, S) in [-1, 1]; the permuted view is already channels_last
        x = u8.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        return x.contiguous() if self.compiled else x  # compiled: the layout the compile check used

    def _write_config(self) -> None:
        if self.rank == 0:
            import tomli_w

            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run.config, tomli_w.dumps(self.cfg.to_dict()))

    def _repair_log(self) -> None:
        """``log.csv`` as of the checkpoint: a row torn by a kill is dropped, and so are rows of epochs after
        the checkpoint (they are trained again, and logged again); a log of an older version gets today's
        columns (the new ones empty)."""
        path = self.run.log
        if self.rank != 0 or not path.exists():
            return
        lines = path.read_bytes().decode("utf-8", "replace").splitlines()
        header = lines[0].split(",") if lines else LOG_FIELDS
        keep = [",".join(LOG_FIELDS)]
        for line in lines[1:]:
            cells = line.split(",")
            if len(cells) == len(header) and cells[0].isdigit() and int(cells[0]) <= self.epoch:
                row = dict(zip(header, cells))
                keep.append(",".join(row.get(f, "") for f in LOG_FIELDS))
        if keep != lines:
            if header == LOG_FIELDS:
                log.info("%s: log.csv repaired (%d rows after the checkpoint or torn)", self.cfg.genre,
                         len(lines) - len(keep))
            atomic_write_text(path, "\n".join(keep) + "\n")

    def _log_epoch(self, means: np.ndarray, ips: float, elapsed: float) -> None:
        """Append the epoch's row, flushed to disk (a kill loses no finished epoch's row); its quality
        columns are filled when a measurement of this epoch finishes (``_record_quality``)."""
        if self.rank != 0:
            return
        path = self.run.log
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(LOG_FIELDS)
            w.writerow([self.epoch, self.step, *(f"{v:.5f}" for v in means[:4]), f"{ips:.1f}", f"{elapsed:.3f}",
                        "", "", "", f"{means[4]:.4f}" if self.cfg.adaptive else ""])
            f.flush()
            os.fsync(f.fileno())


PENDING_BYTES = 256 << 20  # samples waiting for the PNG writer at most (short epochs outrun it; on a GPU
# they wait as GPU tensors)
LINE_SECONDS = 10  # at most one epoch line this often once epochs are shorter (log.csv has them all)
GRID_TILE = 256  # the grid's tiles at most this big: 8 x 256 px makes a 4K clip's height; a 1024 px run's
# full-size grid would be an 8,194 px PNG of ~200 MB every epoch (its single-latent tracks keep full size)


def make_grid(u8: np.ndarray, pad: int = 2, tile: int | None = None) -> np.ndarray:
    """(B, S, S, 3) uint8 -> one near-square grid image with ``pad`` black pixels between tiles, each tile
    reduced to ``tile`` px when S is larger."""
    if tile and u8.shape[1] > tile:
        import cv2

        u8 = np.stack([cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA) for img in u8])
    b, s = u8.shape[0], u8.shape[1]
    cols = math.ceil(math.sqrt(b))
    rows = math.ceil(b / cols)
    grid = np.zeros((rows * (s + pad) + pad, cols * (s + pad) + pad, 3), np.uint8)
    for i, img in enumerate(u8):
        r, c = divmod(i, cols)
        grid[pad + r * (s + pad):pad + r * (s + pad) + s, pad + c * (s + pad):pad + c * (s + pad) + s] = img
    return grid


def plot_losses(csv_path: Path, out: Path) -> None:
    """The losses over the epochs and, on a second axis, the quality curve (KID with its spread)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # a long run's rows as 1,000 bin means: a 700 px plot shows no more, and matplotlib drew 80,000 epochs in
    # 1.5 s, on the training thread every minute
    cols = log_columns(csv_path, most=1000, keys=("epoch", "loss_d", "loss_g", "kid", "kid_se"))
    if not cols.get("epoch"):
        return
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)

    def present(*keys):  # (epoch, value...) where the first value is there (epoch 0: the KID's start only)
        return [(e, *(v or 0.0 for v in vs)) for e, *vs in zip(cols["epoch"], *(cols.get(k, []) for k in keys))
                if vs and vs[0] is not None]
    for key, label, color in (("loss_d", "D loss", "tab:blue"), ("loss_g", "G loss", "tab:green")):
        points = present(key)
        if points:
            ax.plot(*zip(*points), label=label, linewidth=1, color=color)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    kid = present("kid", "kid_se")
    handles, labels = ax.get_legend_handles_labels()
    if kid:
        k2 = ax.twinx()
        e, v, se = (np.array(c) for c in zip(*kid))
        line, = k2.plot(e, v, color="tab:red", marker="o" if len(e) < 200 else None, markersize=3, label="KID")
        k2.fill_between(e, v - se, v + se, color="tab:red", alpha=0.2)
        k2.set_ylabel("KID (lower is better)")
        handles, labels = handles + [line], labels + ["KID"]
    ax.legend(handles, labels, loc="upper right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())


# ---------------------------------------------------------------- one genre, and a queue of genres
def describe_error(exc: BaseException) -> str:
    """One line for a failure: the error's kind, its words and the file it concerns."""
    if isinstance(exc, DiskFull):
        return exc.strerror
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return f"{type(exc).__name__}: {exc.strerror or exc}{where}"
    own = (ValueError, TrainingDiverged, RunBusy, NoUsableVideo, MediaError)  # their words are the whole story
    return str(exc) if isinstance(exc, own) else f"{type(exc).__name__}: {exc}"


def train_genre(cfg: TrainConfig, run_dir: Path | GanRun, resume: bool = False, deadline: float | None = None,
                progress: bool | None = None) -> Outcome:
    """Train one genre; any failure after the trainer started comes back as a failed Outcome with its epoch,
    step and the real error (the last good checkpoint is kept). ``deadline`` None: the run's own ``hours`` or
    ``until``, counted from now."""
    rank, _ = dist_info()
    run = GanRun.at(run_dir)
    if rank == 0:  # one process writes a run: a second start of the same genre is refused, not interleaved
        with hold(run.path, "vj gan train"):
            return _train_genre(cfg, run, resume, deadline, progress, rank)
    return _train_genre(cfg, run, resume, deadline, progress, rank)


def _train_genre(cfg: TrainConfig, run: GanRun, resume: bool, deadline: float | None, progress: bool | None,
                 rank: int) -> Outcome:
    deadline = deadline_from(cfg) if deadline is None else deadline
    trainer = Trainer(run, cfg, resume=resume, progress=progress)
    cfg = trainer.cfg

    def load_cache():
        return build_cache(cfg.videos, run.frames, cfg.size, cfg.fps, cfg.crop, cfg.dedupe,
                           progress=progress is not False and rank == 0, skip=(run.root,))

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, trainer.request_stop)
    try:
        if trainer.world == 1:
            cache = load_cache()
        else:  # rank 0 writes the cache; the others open it once it is complete (or fail as rank 0 did)
            import torch.distributed as dist

            if rank == 0:
                try:
                    cache = load_cache()
                finally:
                    dist.barrier()
            else:
                dist.barrier()
                cache = load_cache()
        if rank == 0:
            log.info("%s: %s", cfg.genre, cache.report)
        try:
            return trainer.fit(cache.frames, cache.active, deadline)
        except Exception as exc:
            if trainer.world > 1:
                _leave_torchrun(trainer, exc)
            raise
    except TrainingDiverged as exc:
        return Outcome(cfg.genre, "failed", trainer.epoch, trainer.step, f"{exc}; {DIVERGED_ADVICE}")
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - reported with where it happened; the queue goes on
        log.debug("genre %s failed", cfg.genre, exc_info=True)
        return Outcome(cfg.genre, "failed", trainer.epoch, trainer.step, describe_error(exc))
    finally:
        signal.signal(signal.SIGINT, previous)


DIVERGED_ADVICE = "kept the last good checkpoint (try a lower --set lr=, or --set augment=)"


def _leave_torchrun(trainer: Trainer, exc: Exception) -> NoReturn:
    """A process that failed while training under torchrun: the others are in, or about to enter, a collective
    that waits for it, and would wait for ever (Gloo's timeout is half an hour) without a word. It says why in
    one line and exits at once; torchrun then stops the others. Not through the interpreter's shutdown, which
    would free a process group still in use. The last checkpoint stays, so --resume goes on from it."""
    what = f"{exc}; {DIVERGED_ADVICE}" if isinstance(exc, TrainingDiverged) else describe_error(exc)
    log.debug("rank %d failed", trainer.rank, exc_info=True)
    log.error("%s: failed on rank %d at epoch %d (step %d): %s. Every process stops; resume with --resume",
              trainer.cfg.genre, trainer.rank, trainer.epoch, trainer.step, what)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def train_queue(jobs: list[tuple[TrainConfig, Path | GanRun]], resume: bool,
                progress: bool | None = None) -> list[Outcome]:
    """Train genres one after another under one deadline; each gets an equal share of the time left.

    A genre that fails (bad folder, NaN, a full disk, an error) is reported and the queue goes on.
    """
    outcomes: list[Outcome] = []
    deadline = deadline_from(jobs[0][0]) if jobs else None
    for i, (cfg, run_dir) in enumerate(jobs):
        share = None
        if deadline is not None:
            share = time.time() + (deadline - time.time()) / (len(jobs) - i)
        try:
            outcome = train_genre(cfg, run_dir, resume=resume, deadline=share, progress=progress)
        except Exception as exc:  # noqa: BLE001 - before training started: a bad folder, a damaged checkpoint
            log.debug("genre %s failed", cfg.genre, exc_info=True)
            outcome = Outcome(cfg.genre, "failed", 0, 0, describe_error(exc))
        outcomes.append(outcome)
        if outcome.status == "interrupted":
            break
    return outcomes
