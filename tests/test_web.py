"""The stage surface: REST and WebSocket through aiohttp's test client on a real engine, then the page in a
real headless Chromium (Debian's, driven by playwright) against a live engine, on 127.0.0.1 only."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import threading
import time

import numpy as np
import pytest

from conftest import ROOT

CHROMIUM = "/usr/bin/chromium"


def engine_of(show, exact=True):
    from vj.engine import Engine
    from vj.scene import load_scene

    return Engine(load_scene(show[1]), exact=exact)


def run(coro):
    return asyncio.run(coro)


async def client_for(server):
    from aiohttp.test_utils import TestClient, TestServer

    server.loop = asyncio.get_running_loop()
    client = TestClient(TestServer(server.app))
    await client.start_server()
    return client


def test_rest_state_schema_params_and_commands(show):
    from vj.clock import FixedClock
    from vj.control.web import WebServer
    from vj.live import ShowAPI

    engine = engine_of(show)
    server = WebServer(ShowAPI(engine), start=False)
    clock = FixedClock(10)

    async def go():
        c = await client_for(server)
        try:
            state = await (await c.get("/api/v1/state")).json()
            assert state["genre"] == "red" and state["genres"] == ["red", "blue"]
            assert state["params"]["master.fader"] == 1.0 and "bpm" in state["tempo"] and state["cues"] == []
            schema = await (await c.get("/api/v1/schema")).json()
            assert {p["name"] for p in schema["params"]} == set(engine.store.params)
            genre = next(cmd for cmd in schema["commands"] if cmd["name"] == "genre")
            assert genre["choices"] == ["red", "blue"]
            r = await c.put("/api/v1/params/master.fader", json={"value": 7})
            assert r.status == 200 and (await r.json())["value"] == 1.0          # clamped, as OSC would
            r = await c.put("/api/v1/params/layer.gan.opacity", json={"value": 0.25})
            assert r.status == 200
            r = await c.put("/api/v1/params/master.fadr", json={"value": 1})
            assert r.status == 404 and "'master.fadr' is not a parameter" in (await r.json())["error"]
            r = await c.put("/api/v1/params/master.fader", json={"value": "loud"})
            assert r.status == 400 and "not a number" in (await r.json())["error"]
            r = await c.put("/api/v1/params/master.fader", data=b"{not json")
            assert r.status == 400 and (await r.json())["error"] == "the body is not JSON"
            r = await c.put("/api/v1/params/master.fader", data=b"[" * 100_000)
            assert r.status == 413 and "error" in await r.json()
            r = await c.post("/api/v1/genre/Photo")
            assert r.status == 404 and (await r.json())["error"] == "unknown genre 'Photo' (known: red, blue)"
            assert (await c.post("/api/v1/genre/blue")).status == 202
            assert (await c.post("/api/v1/tap")).status == 202
            assert (await c.post("/api/v1/bpm/97")).status == 202                # the alias of tempo.bpm
            r = await c.post("/api/v1/explode")
            assert r.status == 404 and "unknown command 'explode'" in (await r.json())["error"]
            assert (await c.post("/api/v1/key/i")).status == 202                  # the scene's key
            assert (await c.get("/api/v1/nothing")).status == 404
            engine.step(clock.tick())
            engine.step(clock.tick())
            assert engine.genres.current == "blue" and engine.store["layer.gan.opacity"] == 0.25
            assert engine.store["tempo.bpm"] == 97 and engine.store["fx.inv.amount"] == 1.0
            assert engine.store.dropped["web: bad request"] >= 4
        finally:
            await c.close()
    run(go())
    engine.close()


def test_foreign_origins_and_missing_tokens_are_refused(show):
    from vj.control.web import WebServer
    from vj.live import ShowAPI

    engine = engine_of(show)
    server = WebServer(ShowAPI(engine), host="0.0.0.0", start=False)  # beyond loopback: a token
    assert server.token

    async def go():
        c = await client_for(server)
        try:
            assert (await c.get("/api/v1/state")).status == 401
            assert (await c.get(f"/api/v1/state?token={server.token}")).status == 200
            auth = {"Authorization": f"Bearer {server.token}"}
            assert (await c.get("/api/v1/state", headers=auth)).status == 200
            r = await c.put("/api/v1/params/master.fader", json={"value": 0}, headers={**auth, "Origin": "http://evil.test"})
            assert r.status == 403 and "evil.test" in (await r.json())["error"]
            own = f"http://{c.host}:{c.port}"
            r = await c.put("/api/v1/params/master.fader", json={"value": 0}, headers={**auth, "Origin": own})
            assert r.status == 200
            with pytest.raises(Exception):
                await c.ws_connect("/api/v1/ws", headers={**auth, "Origin": "http://evil.test"})
            page = await c.get(f"/?token={server.token}")
            assert page.status == 200 and "vj_token" in page.cookies  # the page's own requests carry it
        finally:
            await c.close()
    run(go())
    engine.close()


def test_websocket_state_then_every_change_batched_once_a_frame_and_two_clients_agree(show):
    from vj.clock import FixedClock
    from vj.control.web import WebServer
    from vj.live import ShowAPI

    engine = engine_of(show)
    server = WebServer(ShowAPI(engine), start=False)
    engine.store.on_change(server.on_change)
    engine.after_frame.append(server.frame)
    clock = FixedClock(10)

    async def changes(ws, want, timeout=5.0):
        seen = {}
        end = time.monotonic() + timeout
        while not want(seen) and time.monotonic() < end:
            msg = json.loads((await ws.receive(timeout=timeout)).data)
            if msg["type"] == "changes":
                seen.update(msg["params"])
                seen.update(msg["state"])
        return seen

    async def go():
        c = await client_for(server)
        try:
            a, b = await c.ws_connect("/api/v1/ws"), await c.ws_connect("/api/v1/ws")
            first = json.loads((await a.receive()).data)
            assert first["type"] == "state" and first["genre"] == "red"
            await b.receive()
            await a.send_str(json.dumps({"type": "param", "name": "master.crossfade", "value": 0.1}))
            await a.send_str(json.dumps({"type": "command", "name": "genre", "argument": "blue"}))
            await asyncio.sleep(0.2)
            engine.store.push("fx.inv.amount", 1, "osc")  # from another control: the browsers see it too
            engine.step(clock.tick())
            for ws in (a, b):
                seen = await changes(ws, lambda s: {"master.crossfade", "genre", "fx.inv.amount"} <= set(s))
                assert seen["master.crossfade"] == pytest.approx(0.1) and seen["genre"] == "blue"
                assert seen["fx.inv.amount"] == 1.0
            await a.send_str("not json")
            assert json.loads((await a.receive()).data)["type"] == "error"
            await a.send_str(json.dumps({"type": "param", "name": "nope", "value": 1}))
            reply = json.loads((await a.receive()).data)
            assert reply["type"] == "error" and "'nope' is not a parameter" in reply["error"]
            await a.close()
            await b.close()
        finally:
            await c.close()
    run(go())
    engine.close()


def test_requests_are_rate_limited_and_never_a_server_error(show):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from vj.control.web import WebServer
    from vj.live import ShowAPI

    engine = engine_of(show)
    server = WebServer(ShowAPI(engine), start=False)

    async def burst():
        c = await client_for(server)
        try:
            codes = [(await c.get("/api/v1/status")).status for _ in range(600)]
        finally:
            await c.close()
        return codes

    codes = run(burst())
    assert 429 in codes and codes[0] == 200

    server = WebServer(ShowAPI(engine), start=False)  # an app serves one event loop: a new one for this part
    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(client_for(server))

    @settings(max_examples=60, deadline=None)
    @given(st.sampled_from(["GET", "PUT", "POST", "DELETE"]),
           st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40),
           st.binary(max_size=200))
    def anything(method, path, body):
        server.bucket = type(server.bucket)()  # a fresh allowance: this checks answers, not the limit

        async def one():
            r = await client.request(method, "/api/v1/" + path.lstrip("/"), data=body)
            return r.status, await r.text()
        status, text = loop.run_until_complete(one())
        assert 400 <= status < 500 or status in (200, 202), (status, text)
        if status >= 400:
            assert "error" in json.loads(text)
    try:
        anything()
    finally:
        loop.run_until_complete(client.close())
        loop.close()
        engine.close()


def test_a_genre_pad_shows_its_loops_else_its_generators_latest_sample(show, tmp_path):
    import io

    from PIL import Image

    from vj.live import _thumbnail
    from vj.sources import Genre

    def colour(jpeg):
        return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).reshape(-1, 3).mean(0)

    d, _, _ = show
    red = colour(_thumbnail(Genre("red", clips=(d / "red.mp4",))))
    assert red[0] > 120 > red[2]
    run = tmp_path / "gan" / "blue"  # a genre that is a trained run alone: no loops, no mosaic
    (run / "samples" / "z00").mkdir(parents=True)
    for epoch, rgb in ((1, (200, 0, 0)), (12, (20, 40, 230))):  # the latest epoch's, not the first name's
        Image.fromarray(np.full((64, 64, 3), rgb, np.uint8)).save(run / "samples" / "z00" / f"epoch_{epoch:05d}.png")
    blue = colour(_thumbnail(Genre("blue", generator=run / "ckpt.pt")))
    assert blue[2] > 200 > 60 > blue[0]
    assert _thumbnail(Genre("none", generator=tmp_path / "elsewhere" / "g.pt")) is None and _thumbnail(None) is None


def test_monitor_lists_runs_with_their_samples_and_log(tmp_path):
    from PIL import Image

    from vj.control.web import WebServer

    run_dir = tmp_path / "gan" / "plasma"
    (run_dir / "samples").mkdir(parents=True)
    for e in range(3):
        Image.fromarray(np.full((8, 8, 3), e * 60, np.uint8)).save(run_dir / "samples" / f"epoch_{e:05d}.png")
    (run_dir / "config.toml").write_text('genre = "plasma"\nepochs = 10\nsize = 64\n')
    (run_dir / "log.csv").write_text("epoch,step,loss_d,loss_g,d_x,d_g_z,images_per_s,elapsed_s\n"
                                     "1,10,1.2,0.8,0.6,0.4,50.0,10.0\n2,20,1.1,0.9,0.6,0.4,52.0,20.0\n")
    server = WebServer(None, runs=tmp_path, start=False)

    async def go():
        c = await client_for(server)
        try:
            assert "training monitor" in await (await c.get("/")).text()
            runs = await (await c.get("/api/v1/runs")).json()
            (r,) = runs["genres"]
            assert (r["genre"], r["epoch"], r["step"], r["epochs"], r["latest"]) == ("plasma", 2, 20, 10,
                                                                                      "epoch_00002.png")
            assert r["eta_s"] == pytest.approx(80.0)
            log = await (await c.get("/api/v1/runs/plasma/log")).json()
            assert log["columns"]["loss_d"] == [1.2, 1.1]
            assert (await (await c.get("/api/v1/runs/plasma/samples")).json())["samples"][-1] == "epoch_00002.png"
            assert (await c.get("/api/v1/runs/plasma/samples/epoch_00001.png")).status == 200
            assert (await c.get("/api/v1/runs/plasma/samples/..%2Fconfig.toml")).status == 404
            assert (await c.get("/api/v1/runs/..%2F..%2Fetc/log")).status == 400
            lost = await c.get("/api/v1/schema")  # the show's endpoint: a monitor alone points at its own
            assert lost.status == 404 and "/api/v1/runs" in (await lost.json())["error"]
            # an overnight run of short epochs: bin means the chart can draw, not every row
            rows = "".join(f"{e},{10 * e},{e % 2},0.8,0.6,0.4,50.0,{e},{0.25 if e == 5990 else ''}\n"
                           for e in range(1, 6001))
            (run_dir / "log.csv").write_text("epoch,step,loss_d,loss_g,d_x,d_g_z,images_per_s,elapsed_s,kid\n" + rows
                                             + "6001,60010,0.")  # a row torn by a kill: left out
            cols = (await (await c.get("/api/v1/runs/plasma/log")).json())["columns"]
            assert len(cols["epoch"]) == len(cols["loss_d"]) == 600 and set(cols["loss_d"]) == {0.5}
            (r,) = (await (await c.get("/api/v1/runs")).json())["genres"]  # from the log's tail
            assert (r["epoch"], r["step"], r["kid"]) == (6000, 60000, 0.25)  # the latest KID, not the last row's
        finally:
            await c.close()
    run(go())


# ---------------------------------------------------------------- a real browser
def _chromium_ok() -> str | None:
    if not shutil.which(CHROMIUM):
        return "no Debian chromium (scripts/setup.sh --test installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "no playwright (pip install playwright)"
    return None


@contextlib.contextmanager
def foreign_site(tmp_path, show_url):
    """Another origin on 127.0.0.1 serving a page that tries to drive the show."""
    import http.server
    import socketserver

    site = tmp_path / "site"
    site.mkdir()
    (site / "evil.html").write_text(f"""<script>(async () => {{
      try {{ await fetch('{show_url}api/v1/params/master.fader', {{method: 'PUT',
             headers: {{'Content-Type': 'text/plain'}}, body: JSON.stringify({{value: 0}})}}); }} catch (e) {{}}
      const ws = new WebSocket('{show_url.replace("http", "ws")}api/v1/ws');
      ws.onopen = () => ws.send(JSON.stringify({{type: 'param', name: 'master.fader', value: 0}}));
      await new Promise(r => setTimeout(r, 800)); window.done = true; }})();</script>""")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}/evil.html"
        finally:
            httpd.shutdown()


class LiveShow:
    """An engine playing live on a thread (as `vj live` does), with the web server and OSC on 127.0.0.1."""

    def __init__(self, show):
        from vj.clock import RealtimeClock
        from vj.control.osc import OscRouter, OscServer
        from vj.live import start_web

        self.engine = engine_of(show, exact=False)
        self.server = start_web(self.engine, "127.0.0.1:0")
        self.osc = OscServer(OscRouter(self.engine.store), "127.0.0.1", 0)
        self.engine.before_frame.append(self.osc.poll)
        self.clock = RealtimeClock(30)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.engine.run(self.clock, [], seconds=120)  # bounded; stop() ends it sooner

    def wait(self, what, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if what():
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self.engine.stop()
        self.thread.join(10)
        self.osc.close()
        self.server.close()
        self.engine.close()


# the faders shown (a collapsed group's are not) whose slider is under 60 px wide or that reach past their panel
CRAMPED = """() => [...document.querySelectorAll('.control')].flatMap(c => {
    const r = c.getBoundingClientRect(), panel = c.closest('section').getBoundingClientRect();
    if (r.width === 0) return [];
    const slider = c.querySelector('input[type=range]'), bad = [];
    if (slider && slider.getBoundingClientRect().width < 60) bad.push(`${c.dataset.param}: slider ${slider.getBoundingClientRect().width} px`);
    if (r.left < panel.left || r.right > panel.right - 4) bad.push(`${c.dataset.param}: past its panel`);
    return bad; })"""


@pytest.mark.skipif(_chromium_ok() is not None, reason=_chromium_ok() or "")
def test_the_page_in_a_real_browser(show, tmp_path):
    from playwright.sync_api import sync_playwright
    from pythonosc.udp_client import SimpleUDPClient

    live = LiveShow(show)
    url = live.server.url
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_selector("#genres .pad.lit", timeout=20000)
            # the preview moves: two looks at the image a moment apart differ
            look = """() => { const img = document.getElementById('preview'); const c = document.createElement('canvas');
                c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext('2d');
                g.drawImage(img, 0, 0); return Array.from(g.getImageData(0, 0, c.width, c.height).data.slice(0, 4000)); }"""
            page.wait_for_function("document.getElementById('preview').naturalWidth > 0", timeout=20000)
            first = page.evaluate(look)
            page.wait_for_timeout(1200)
            assert page.evaluate(look) != first
            # a genre pad switches the engine
            page.click("#genres .pad[data-genre=blue]")
            assert live.wait(lambda: live.engine.genres.current == "blue")
            page.wait_for_selector("#genres .pad.lit[data-genre=blue]", timeout=5000)
            # a fader moved in the browser changes the parameter
            page.locator("[data-param='master.crossfade'] input").fill("0.2")
            assert live.wait(lambda: abs(live.engine.store["master.crossfade"] - 0.2) < 1e-3)
            # an OSC message moves the fader on the page; a second page follows both
            other = browser.new_page(viewport={"width": 390, "height": 844})
            other.goto(url)
            other.wait_for_selector("[data-param='master.fader'] input", timeout=20000)
            SimpleUDPClient("127.0.0.1", live.osc.address[1]).send_message("/vj/master/fader", 0.35)
            for pg in (page, other):
                pg.wait_for_function("Math.abs(Number(document.querySelector(\"[data-param='master.fader'] "
                                     "input\").value) - 0.35) < 0.01", timeout=5000)
            other.locator("[data-param='layer.gan.opacity'] input").fill("0.8")
            page.wait_for_function("Math.abs(Number(document.querySelector(\"[data-param='layer.gan.opacity'] "
                                   "input\").value) - 0.8) < 0.01", timeout=5000)
            page.wait_for_timeout(600)
            page.screenshot(path=str(tmp_path / "laptop.png"), full_page=True)
            other.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
            # every fader shown has a usable slider inside its panel, on a laptop, a tablet and a phone
            tablet = browser.new_page(viewport={"width": 1024, "height": 768})
            tablet.goto(url)
            tablet.wait_for_selector("[data-param='master.fader'] input", timeout=20000)
            for pg in (page, tablet, other):
                cramped = pg.evaluate(CRAMPED)
                assert not cramped, (pg.viewport_size, cramped)
            tops = """() => Object.fromEntries(['stage', 'genres-section', 'master', 'tempo', 'layers-section'].map(
                id => [id, document.getElementById(id).getBoundingClientRect().top]))"""
            phone = other.evaluate(tops)  # one column: the show, its genres and master first
            assert sorted(phone, key=phone.get) == ["stage", "genres-section", "master", "tempo", "layers-section"]
            for pg in (page, tablet):  # two: the genres beside the show, the tempo right under it
                wide = pg.evaluate(tops)
                assert wide["genres-section"] == wide["stage"]
                under = pg.evaluate("document.getElementById('stage').getBoundingClientRect().bottom")
                assert 0 < wide["tempo"] - under < 20
            # a page of another origin (another port of this machine) cannot drive the show, by fetch or socket
            before = live.engine.store["master.fader"]
            with foreign_site(tmp_path, url) as evil_url:
                evil = browser.new_page()
                evil.goto(evil_url)
                evil.wait_for_function("window.done === true", timeout=10000)
            assert live.engine.store["master.fader"] == before
            assert live.engine.store.dropped["web: foreign origin"] >= 2
            assert not errors, errors
            browser.close()
    finally:
        live.close()
    from PIL import Image

    assert Image.open(tmp_path / "phone.png").size[0] == 390


@pytest.mark.skipif(_chromium_ok() is not None, reason=_chromium_ok() or "")
def test_the_monitor_in_a_real_browser(tmp_path):
    """Each genre's card: its latest sample and learning clip, captioned; the losses; the KID curve with its
    first and latest values, or a word on why there is none."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from vj.control.web import WebServer

    for genre, kid_minutes in (("plasma", 2.0), ("life", 0.0)):
        run_dir = tmp_path / "gan" / genre
        (run_dir / "samples").mkdir(parents=True)
        for e in range(1, 4):
            Image.fromarray(np.full((16, 16, 3), e * 60, np.uint8)).save(run_dir / "samples" / f"epoch_{e:05d}.png")
        until = 'until = "07:30"\n' if genre == "plasma" else ""  # a deadline run: its deadline, not an ETA
        (run_dir / "config.toml").write_text(f'genre = "{genre}"\nepochs = 300\nsize = 64\nkid_minutes = {kid_minutes}\n'
                                             + until)
        kid = (lambda e: f"{0.9 - e / 500:.4f}" if e % 100 == 1 else "") if kid_minutes else (lambda e: "")
        (run_dir / "log.csv").write_text("epoch,step,loss_d,loss_g,d_x,d_g_z,images_per_s,elapsed_s,kid\n" + "".join(
            f"{e},{9 * e},{1 + (e % 7) / 10},{2 - (e % 5) / 10},0.6,0.4,300.0,{e / 3:.2f},{kid(e)}\n" for e in range(1, 251)))
    server = WebServer(None, "127.0.0.1", 0, runs=tmp_path)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1024, "height": 700})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url)
            page.wait_for_function("document.querySelectorAll('.run .kid-value').length === 2", timeout=20000)
            page.wait_for_function("[...document.querySelectorAll('.run img')].every(i => i.naturalWidth > 0)",
                                   timeout=20000)
            cards = page.evaluate("""() => [...document.querySelectorAll('.run')].map(c => ({
                genre: c.querySelector('h3').firstChild.textContent,
                captions: [...c.querySelectorAll('figcaption')].map(f => f.textContent),
                keys: c.querySelector('.keys').textContent,
                info: c.querySelectorAll('.legend')[1].textContent,
                lines: c.querySelectorAll('svg polyline').length,
                kids: [...c.querySelectorAll('.kid-value')].map(t => t.textContent)}))""")
            life, plasma = cards
            assert "· until 07:30 ·" in plasma.pop("info") and "· ETA 0m" in life["info"]
            assert plasma == {"genre": "plasma", "captions": ["latest: epoch 3", "learning clip"], "lines": 5,
                              "keys": "loss dloss gKID 0.498", "kids": ["0.898", "0.498"]}
            assert life["keys"] == "loss dloss gKID off" and life["lines"] == 4 and life["kids"] == []
            page.screenshot(path=str(tmp_path / "monitor.png"), full_page=True)
            assert not errors, errors
            browser.close()
    finally:
        server.close()

