"""The web surface under load, with real Chromium (Debian's, driven by playwright), on 127.0.0.1 only.

Load: the 1080p engine scene at 60 fps with 4 browser pages connected (each: the preview at 15 fps and the
WebSocket state) against none, interleaved in --period (10 s) halves, so the machine's drift falls on both
alike. Target: frame-time p95 ratio <= 1.10. Chromium stands in for the phones and tablets on stage, so by
default it runs as SCHED_IDLE (it gets only what the show leaves, as if it ran elsewhere); measured here, the
server's own work (4 MJPEG streams and 4 WebSockets read by niced Python clients) changed nothing, and the
rest is Chromium decoding and painting on the same 2 cores. --browser-priority 0 measures a browser on the
show's own laptop (nice 0), 19 a niced one.
Preview latency: every frame carries its number in a row of black and white blocks in its top left corner;
the page reads it from the preview image on every animation frame. Target: median <= 100 ms from the frame
being rendered to the same frame shown in the browser.
Control latency: a fader moved in the browser (a WebSocket message) until the frame that applies it.

    python scripts/bench/web.py [--period 10] [--rounds 3] [--browser-nice 19]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from assets import make_show
from common import header, stats_ms

BITS, BLOCK = 16, 24  # frame number in 16 blocks of 24 px at 1080p (8 px in a 640 px preview)

# the same load without a browser: 4 previews and 4 WebSockets read by a niced Python process (what serving
# costs the show, apart from the browsers' own decoding and painting)
READERS = r"""
import asyncio, aiohttp, os, sys
os.nice(19)
url, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
async def preview(s):
    async with s.get(url + "api/v1/preview.mjpeg?fps=15&width=640") as r:
        async for chunk in r.content.iter_chunked(65536): pass
async def socket(s):
    async with s.ws_connect(url + "api/v1/ws") as w:
        async for m in w: pass
async def main():
    async with aiohttp.ClientSession() as s:
        tasks = [asyncio.create_task(f(s)) for f in (preview, socket) for _ in range(n)]
        await asyncio.sleep(secs)
        for t in tasks: t.cancel()
asyncio.run(main())
"""

READ = """() => {
  const img = document.getElementById('preview');
  if (!img.naturalWidth) return null;
  const c = window._c || (window._c = document.createElement('canvas'));
  const s = img.naturalWidth / 1920, b = %d * s;
  c.width = Math.ceil(%d * b); c.height = Math.ceil(b);
  const g = c.getContext('2d', {willReadFrequently: true});
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < %d; i++) {
    const x = Math.floor((i + 0.5) * b), y = Math.floor(b / 2), k = (y * c.width + x) * 4;
    n = n * 2 + (d[k] + d[k + 1] + d[k + 2] > 384 ? 1 : 0);
  }
  return n;
}""" % (BLOCK, BITS, BITS)

WATCH = """() => {
  window.seen = {};
  const read = %s;
  const tick = () => { const n = read(); if (n !== null && !(n in window.seen)) window.seen[n] = performance.timeOrigin + performance.now();
                       requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}""" % READ


def stamp(frame: np.ndarray, index: int) -> None:
    """The frame's number (mod 65536) as 16 black or white blocks, most significant first."""
    n = index % (1 << BITS)
    for i in range(BITS):
        frame[:BLOCK, i * BLOCK:(i + 1) * BLOCK] = 255 if (n >> (BITS - 1 - i)) & 1 else 0


def browser_cpu() -> float:
    """CPU seconds used so far by every Chromium process."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"chromium" not in f.read():
                        continue
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass
    return total


def renice_browsers(priority: str) -> None:
    """Every Chromium process (browser, renderers, zygotes) to SCHED_IDLE ("idle") or a niceness."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"chromium" not in f.read():
                        continue
                for task in os.listdir(f"/proc/{pid}/task"):  # every thread of it
                    if priority == "idle":
                        os.sched_setscheduler(int(task), os.SCHED_IDLE, os.sched_param(0))
                    else:
                        os.setpriority(os.PRIO_PROCESS, int(task), int(priority))
            except OSError:
                pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--period", type=float, default=10.0, help="seconds with clients, then as long without")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--browser-priority", default="idle", help="idle (SCHED_IDLE, default), or a niceness: 19, 0")
    args = p.parse_args()
    header(f"web: 1080p60 engine with {args.clients} Chromium clients (preview + state) vs none")
    from playwright.sync_api import sync_playwright

    from vj.clock import RealtimeClock
    from vj.engine import Engine
    from vj.live import start_web
    from vj.scene import load_scene

    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(load_scene(make_show(Path(tmp), size="1920x1080", fps=60)), exact=False)
        produced: dict[int, float] = {}
        engine.after_frame.append(lambda frame, i: (stamp(frame, i), produced.__setitem__(i % (1 << BITS), time.time())))
        server = start_web(engine, "127.0.0.1:0")
        applied: dict[float, tuple[float, int]] = {}
        engine.store.on_change(lambda n, v: applied.setdefault(round(v, 4), (time.time(), engine.index))
                               if n == "master.crossfade" else None)
        frames: list[tuple[float, float]] = []   # (start, render seconds)
        stop = threading.Event()

        def show():
            clock = RealtimeClock(60)
            while not stop.is_set():
                t = clock.tick()
                t0 = time.monotonic()
                engine.step(t)
                frames.append((t0, time.monotonic() - t0))

        runner = threading.Thread(target=show)
        runner.start()
        time.sleep(5)  # warm-up: sources made, decoders full
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync", "--disable-renderer-backgrounding",
                "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows"])
            renice_browsers(args.browser_priority)
            pages = [browser.new_page(viewport={"width": 1280, "height": 900}) for _ in range(args.clients)]
            with_clients, without, readers, chromium_cpu = [], [], [], 0.0
            for _ in range(args.rounds):
                for pg in pages:
                    pg.goto(server.url)
                renice_browsers(args.browser_priority)
                pages[0].wait_for_function("document.getElementById('preview').naturalWidth > 0", timeout=30000)
                time.sleep(1.0)  # connected and streaming
                t0, c0 = time.monotonic(), browser_cpu()
                time.sleep(args.period)
                with_clients.append((t0, time.monotonic()))
                chromium_cpu += browser_cpu() - c0
                for pg in pages:
                    pg.goto("about:blank")
                time.sleep(1.0)  # disconnected
                t0 = time.monotonic()
                time.sleep(args.period)
                without.append((t0, time.monotonic()))
                proc = subprocess.Popen([sys.executable, "-c", READERS, server.url, str(args.clients),
                                         str(args.period + 1.5)])
                time.sleep(1.0)
                t0 = time.monotonic()
                time.sleep(args.period)
                readers.append((t0, time.monotonic()))
                proc.wait()
            # preview latency: one page watches the frame numbers
            page = pages[0]
            page.goto(server.url)
            page.wait_for_function("document.getElementById('preview').naturalWidth > 0", timeout=30000)
            page.evaluate(WATCH)
            time.sleep(8)
            seen = page.evaluate("window.seen")
            # control latency: the crossfader moved from the page, 30 times
            sends = []
            for k in range(30):
                v = round(0.2 + 0.02 * k, 4)
                sent = page.evaluate(f"""() => {{ const t = performance.timeOrigin + performance.now();
                    show.socket.send(JSON.stringify({{type: 'param', name: 'master.crossfade', value: {v}}})); return t; }}""")
                sends.append((v, sent / 1000, engine.index))
                time.sleep(0.15)
            browser.close()
        stop.set()
        runner.join()
        server.close()
        engine.close()

    def during(windows):
        return [dt for t, dt in frames if any(a <= t < b for a, b in windows)]

    on, off, served = during(with_clients), during(without), during(readers)
    print(f"   without clients: {stats_ms(off)} ({len(off)} frames)")
    print(f"   {args.clients} previews (15 fps) + {args.clients} WebSockets read by a niced Python process, the "
          f"server's whole cost: {stats_ms(served)}; p95 ratio {np.percentile(served, 95) / np.percentile(off, 95):.2f} "
          f"(target <= 1.10)")
    print(f"   {args.clients} Chromium pages on the same 2 cores (priority {args.browser_priority}): {stats_ms(on)}; p95 "
          f"ratio {np.percentile(on, 95) / np.percentile(off, 95):.2f}; Chromium used "
          f"{chromium_cpu / (args.rounds * args.period):.2f} cores decoding and painting")
    lat = [seen[k] / 1000 - produced[int(k)] for k in seen if int(k) in produced]
    lat = [x for x in lat if 0 <= x < 5]
    if lat:
        print(f"   preview latency, rendered -> shown in the browser: median {np.median(lat) * 1000:.0f} ms, "
              f"p95 {np.percentile(lat, 95) * 1000:.0f} ms over {len(lat)} frames seen (target median <= 100 ms)")
    ctl = [(applied[v][0] - sent, applied[v][1] - index) for v, sent, index in sends if v in applied]
    if ctl:
        print(f"   control latency, page -> applied: median {np.median([c[0] for c in ctl]) * 1000:.0f} ms, max "
              f"{max(c[0] for c in ctl) * 1000:.0f} ms; frames after the send: median "
              f"{np.median([c[1] for c in ctl]):.0f}, max {max(c[1] for c in ctl)} ({len(ctl)}/{len(sends)} applied)")


if __name__ == "__main__":
    main()
