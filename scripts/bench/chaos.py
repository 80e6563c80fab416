"""Chaos: the show and an overnight run under abuse, in one run, on 127.0.0.1 only with bounded loops.

Live (default): the engine plays a 720p scene (two genres: clips, a generator, a mosaic) for --minutes
(default 5). After a calm tenth, a second process sends, to 127.0.0.1 only:
  - valid OSC at 10,000 msg/s in half-second bursts, genre switches among them;
  - junk datagrams, bundles nested 300 deep and 60 KB bundles of empty elements;
  - hostile values (nan, inf, 1e308, strings, blobs, extra arguments) on every address of `vj osc --list`.
Meanwhile this process deletes and restores clips and removes the checkpoint a generator layer loaded.
It prints: messages sent and handled by kind, crashes (must be 0), frame-time p95 calm vs abuse, RSS at the
start and end, log lines written, frames with a black layer because of a fault.

Training (--train): a tiny genre trained with a checkpoint every step is killed with SIGKILL at --kills
(20) random moments, resumed after each, and its final weights compared with an uninterrupted run's
(bit-exact on the CPU); every file of the run is then checked (PNG samples, checkpoint, log rows, temp
files). A full disk is simulated on a small tmpfs when `mount` is permitted (else it says so).

    python scripts/bench/chaos.py [--minutes 5] [--size 1280x720]
    python scripts/bench/chaos.py --train [--kills 20]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from common import ROOT, header, procedural_videos, rss_mb, stats_ms

SENDER = r'''
import json, math, os, random, socket, struct, sys, time

def pad(b): return b + b"\0" * (4 - len(b) % 4)
def msg(address, tags, payload=b""): return pad(address.encode()) + pad(b"," + tags) + payload
def f(address, v): return msg(address, b"f", struct.pack(">f", v))
def d(address, v): return msg(address, b"d", struct.pack(">d", v))
def s(address, v): return msg(address, b"s", pad(v.encode()))
def bundle(*items): return b"#bundle\0" + b"\0" * 8 + b"".join(struct.pack(">i", len(i)) + i for i in items)

port, seconds, addresses = int(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
os.nice(10)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rng = random.Random(0)
sent = {"valid": 0, "junk": 0, "nested": 0, "oversized": 0, "hostile": 0, "genre": 0}
def send(kind, data):
    try:
        sock.sendto(data, ("127.0.0.1", port))
        sent[kind] += 1
    except OSError:
        pass
nested = f("/vj/master/fader", 0.5)
for _ in range(300):
    nested = bundle(nested)
oversized = b"#bundle\0" + b"\0" * 8 + b"\0\0\0\0" * 15000
hostile = [float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 0.0, -1.0, 1e9]
t0 = time.monotonic()
print(t0, flush=True)
while time.monotonic() - t0 < seconds:
    burst_end = time.monotonic() + 0.5
    n = 0
    while time.monotonic() < burst_end:          # 10,000 valid messages a second, in half-second bursts
        target = int((time.monotonic() - burst_end + 0.5) * 10000)
        while n < target:
            send("valid", f("/vj/master/crossfade", (n % 100) / 100))
            n += 1
        time.sleep(0.001)
    send("genre", s("/vj/genre", rng.choice(["a", "b", "Photo", "x" * 2000])))
    for _ in range(20):
        send("junk", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))))
    send("nested", nested)
    send("oversized", oversized)
    for a in addresses:                           # hostile values on every address
        kind = rng.randrange(5)
        data = (d(a, rng.choice(hostile)) if kind == 0 else s(a, "x" * rng.randint(0, 3000)) if kind == 1 else
                msg(a, b"b", struct.pack(">i", 8) + b"\xff" * 8) if kind == 2 else msg(a, b"ff", b"\0" * 8)
                if kind == 3 else msg(a, b"X"))
        send("hostile", data)
    time.sleep(0.5)                               # the calm half of the period
print(json.dumps(sent), flush=True)
'''


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.n = 0

    def emit(self, record):
        self.n += 1


def live(args) -> None:
    from assets import make_show

    header(f"chaos, live: {args.size} for {args.minutes:g} min under abuse")
    from vj.clock import RealtimeClock
    from vj.control.osc import OscRouter, OscServer, address_table
    from vj.engine import Engine
    from vj.scene import load_scene

    lines = Lines()
    logging.getLogger().addHandler(lines)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        scene = load_scene(make_show(root, size=args.size, fps=60))
        engine = Engine(scene, exact=False)
        server = OscServer(OscRouter(engine.store), "127.0.0.1", 0)
        engine.before_frame.append(server.poll)
        clock = RealtimeClock(60)
        for _ in range(120):  # warm-up: sources made, decoders full
            engine.step(clock.tick())
        rss0 = rss_mb()
        total = args.minutes * 60
        calm_s = max(10.0, total / 10)
        calm = timed_frames(engine, clock, calm_s)
        black0 = engine.compositor.black_frames
        addresses = [row[0] for row in address_table(engine.store, scene.genres)]
        sender = subprocess.Popen([sys.executable, "-c", SENDER, str(server.address[1]), str(total - calm_s),
                                   json.dumps(addresses)], stdout=subprocess.PIPE, text=True)
        sender.stdout.readline()
        stop = threading.Event()
        vandal = threading.Thread(target=vandalise, args=(root, stop), daemon=True)
        vandal.start()
        crashes = 0
        try:
            abused = timed_frames(engine, clock, total - calm_s)
        except Exception as exc:  # noqa: BLE001 - the figure this benchmark is for
            crashes, abused = 1, []
            print(f"   CRASH: {type(exc).__name__}: {exc}")
        stop.set()
        vandal.join()
        sent = json.loads(sender.communicate(timeout=120)[0].strip().splitlines()[-1])
        receiver_alive = server._thread.is_alive()
        server.close()
        rss1 = rss_mb()
        black = engine.compositor.black_frames - black0
        store = engine.store
        engine.close()
    logging.getLogger().removeHandler(lines)
    total_sent = sum(sent.values())
    print(f"   messages sent by kind: " + ", ".join(f"{k} {v:,}" for k, v in sent.items()) + f" ({total_sent:,})")
    print(f"   handled: {store.received:,} events reached the store, {store.superseded:,} superseded in bursts, "
          f"dropped {sum(store.dropped.values()):,} (" + ", ".join(f"{k} {v:,}" for k, v in sorted(store.dropped.items()))
          + "); the rest never arrived (the kernel drops what a full receive buffer cannot hold)")
    print(f"   crashes: {crashes} (receiver thread {'alive' if receiver_alive else 'DEAD'})")
    if abused:
        still = [t for t, fading in calm]
        steady = [t for t, fading in abused if not fading]
        fades = [t for t, fading in abused if fading]
        print(f"   frame time calm {stats_ms(still)}; under abuse, outside genre fades {stats_ms(steady)}: p95 ratio "
              f"{np.percentile(steady, 95) / np.percentile(still, 95):.2f}; during the fades the abuse asked for "
              f"({len(fades)} frames) {stats_ms(fades) if fades else '-'}")
    print(f"   RSS {rss0:.0f} MB -> {rss1:.0f} MB; log lines written: {lines.n:,}; frames with a black layer "
          f"because of a fault: {black} of {len(abused)} (the layer's sources being remade count too)")


def timed_frames(engine, clock, seconds: float) -> list[tuple[float, bool]]:
    """(render time, whether a genre fade was under way) of every frame for ``seconds``."""
    times = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = clock.tick()
        t0 = time.perf_counter()
        engine.step(t)
        times.append((time.perf_counter() - t0, engine.genres.fade_from is not None))
    return times


def vandalise(root: Path, stop: threading.Event) -> None:
    """Every few seconds a clip disappears and comes back; once, the generator checkpoints go."""
    clips = sorted((root / "videos").rglob("*.mp4"))
    rng = random.Random(1)
    removed_ckpt = False
    while not stop.wait(3.0):
        clip = rng.choice(clips)
        hidden = clip.with_suffix(".hidden")
        clip.rename(hidden)
        if stop.wait(3.0):
            hidden.rename(clip)
            return
        hidden.rename(clip)
        if not removed_ckpt:
            for ckpt in root.glob("ckpt*.pt"):
                ckpt.unlink()
            removed_ckpt = True


# ---------------------------------------------------------------- training
def train(args) -> None:
    import torch

    header(f"chaos, training: {args.kills} kills at random moments, resumed after each")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = procedural_videos(tmp / "v", per_genre=2, seconds=2.0)["plasma"]
        flags = ["--size", "64", "--batch", "4", "--fps", "6", "--epochs", str(args.epochs), "--device", "cpu",
                 "--set", "ngf=8", "--set", "ndf=8", "--set", "n_fixed=16", "--set", "ckpt_minutes=0",
                 "--set", "samples_per_epoch=3", "--no-progress"]

        def vj(runs: Path, *extra, wait=True):
            cmd = [sys.executable, "-m", "vj", "gan", "train", str(videos), "--genre", "g", "--runs", str(runs),
                   *flags, *extra]
            p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if wait:
                p.wait()
            return p

        t0 = time.time()
        ref = vj(tmp / "straight")
        straight_s = time.time() - t0
        assert ref.returncode == 0, ref.stderr.read()
        rng = random.Random(args.seed)
        kills = 0
        t0 = time.time()
        while kills < args.kills:
            p = vj(tmp / "chaos", *(["--resume"] if (tmp / "chaos" / "gan" / "g" / "config.toml").exists() else []),
                   wait=False)
            time.sleep(rng.uniform(1.5, max(2.0, straight_s * 0.6)))  # start-up is ~1.5 s: kills land in training
            if p.poll() is not None:
                break  # it finished before this kill
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
        final = vj(tmp / "chaos", "--resume")
        chaos_s = time.time() - t0
        run = tmp / "chaos" / "gan" / "g"
        a = torch.load(run / "ckpt.pt", weights_only=True)
        b = torch.load(tmp / "straight" / "gan" / "g" / "ckpt.pt", weights_only=True)
        exact = all(torch.equal(a[n][k], b[n][k]) for n in ("G", "D") for k in a[n])
        corrupt = check_run(run)
        print(f"   {kills} kills (SIGKILL at random moments, a checkpoint every step), then a resume: "
              f"rc {final.returncode}, epoch {a['epoch']}/{args.epochs}, step {a['step']} = {b['step']} straight")
        print(f"   final weights {'bit-exact' if exact else 'DIFFERENT'} against the uninterrupted run "
              f"({straight_s:.0f} s straight, {chaos_s:.0f} s with the kills)")
        print(f"   corrupt or leftover files: {len(corrupt)}" + (": " + ", ".join(corrupt) if corrupt else ""))
        full_disk(tmp, videos, flags)


def check_run(run: Path) -> list[str]:
    """Every file a reader would trip on: unreadable PNGs, a log with missing/repeated/torn rows, temp files."""
    from PIL import Image

    bad = []
    for png in run.rglob("*.png"):
        try:
            with Image.open(png) as im:
                im.load()
        except Exception:  # noqa: BLE001
            bad.append(str(png.relative_to(run)))
    rows = (run / "log.csv").read_text().splitlines()[1:]
    epochs = [int(r.split(",")[0]) for r in rows]
    if epochs != list(range(1, len(epochs) + 1)) or any(len(r.split(",")) != 8 for r in rows):
        bad.append(f"log.csv epochs {epochs}")
    bad += [str(p.relative_to(run)) for p in run.rglob(".*tmp*")]
    return bad


def full_disk(tmp: Path, videos: Path, flags: list[str]) -> None:
    mnt = tmp / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        print("   full disk: not simulated (mount of a small tmpfs is not permitted here); the unit test "
              "tests/test_gan.py::test_samples_and_checkpoints_are_written_whole_or_not_at_all covers DiskFull")
        return
    try:
        shutil.copytree(videos, mnt / "v")
        p = subprocess.run([sys.executable, "-m", "vj", "gan", "train", str(mnt / "v"), "--genre", "g", "--runs",
                            str(mnt / "runs"), *flags], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
        last = [line for line in p.stderr.splitlines() if "g: " in line][-1:]
        ckpt = mnt / "runs" / "gan" / "g" / "ckpt.pt"
        ok = True
        if ckpt.exists():
            import torch

            try:
                torch.load(ckpt, weights_only=True)
            except Exception:  # noqa: BLE001
                ok = False
        print(f"   full disk (3 MB tmpfs): rc {p.returncode}; {last[0] if last else p.stderr[-200:]}; last "
              f"checkpoint {'loads' if ok else 'DAMAGED'}")
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=5.0, help="live: length of the run (default 5)")
    p.add_argument("--size", default="1280x720", help="live: output size (default 1280x720)")
    p.add_argument("--train", action="store_true", help="the training chaos instead of the live one")
    p.add_argument("--kills", type=int, default=20, help="training: SIGKILLs before the final resume (default 20)")
    p.add_argument("--epochs", type=int, default=6, help="training: epochs of the run (default 6)")
    p.add_argument("--seed", type=int, default=0, help="training: picks the kill moments (default 0)")
    args = p.parse_args()
    if args.train:
        train(args)
    else:
        live(args)


if __name__ == "__main__":
    main()
