"""The stage surface: a browser page with a live preview, a REST + WebSocket API under ``/api/v1``, and a
read-only training monitor, served by aiohttp on its own thread and event loop.

Why aiohttp: HTTP, WebSocket and streaming responses (the MJPEG preview) in one well-kept package with a
test client, that runs happily on a thread of its own; Starlette needs uvicorn besides, whose signal
handling and process model assume it owns the main thread.

The show comes first:
  - the frame loop never waits on the server: it hands over its latest frame (a reference, no copy) and
    the changes of the frame (``frame``), and the server encodes previews on its own threads;
  - every request goes through the same validation as OSC (the store clamps, unknown names are answered
    with the known ones); a bad request is a 4xx with a JSON error, counted, never a crash;
  - the server binds 127.0.0.1 unless told otherwise; beyond loopback every request needs the token
    printed at start; a state-changing request or a WebSocket whose ``Origin`` is not the page's own is
    refused (403), so a web page the VJ happens to open cannot drive the show;
  - request bodies are small, clients are capped, and each client address has a rate limit.

``Show`` below is what the server needs of a show (``vj.live.ShowAPI`` is the engine's); the monitor needs
only a runs folder.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vj.control import parse_host_port
from vj.control.web.monitor import read_log, runs_summary
from vj.core.runs import GanRun
from vj.core.priority import background_priority

log = logging.getLogger("vj")
PAGE = Path(__file__).resolve().parent / "page"
API = "/api/v1"
MAX_BODY = 16 * 1024          # bytes of a request body: a parameter change is a few dozen
MAX_SOCKETS = 16              # WebSocket clients at once
MAX_PREVIEWS = 8              # MJPEG preview streams at once
RATE = 200.0                  # requests (and WebSocket messages) a second per client address, sustained
BURST = 400.0                 # ... and in a burst
PREVIEW_FPS = 15.0
PREVIEW_WIDTH = 640
WEB_NICE = 5                  # the server thread's niceness: below the show, above the decoders


class Show(Protocol):
    """What the server needs of a running show."""
    def state(self) -> dict: ...
    def schema(self) -> dict: ...
    def status(self) -> dict: ...
    def set(self, name: str, value: Any, source: str) -> tuple[bool, Any]: ...
    def command(self, name: str, arg: str | None, source: str) -> str | None: ...
    def press(self, key: str, source: str) -> bool: ...
    def thumbnail(self, genre: str) -> bytes | None: ...
    def count(self, reason: str) -> None: ...


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def parse_address(text: str | None, default_port: int = 8080) -> tuple[str, int]:
    """``[HOST:]PORT``, ``HOST`` or empty (127.0.0.1:8080) -> (host, port); ValueError in one line."""
    return parse_host_port(text, "--web", default_port)


class Bucket:
    """A token bucket per client address."""

    def __init__(self, rate: float = RATE, burst: float = BURST):
        self.rate, self.burst = rate, burst
        self.tokens: dict[str, tuple[float, float]] = {}

    def take(self, who: str) -> bool:
        now = time.monotonic()
        tokens, last = self.tokens.get(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        ok = tokens >= 1
        self.tokens[who] = (tokens - 1 if ok else tokens, now)
        if len(self.tokens) > 10_000:
            self.tokens.clear()
        return ok


class WebServer:
    """The control page, API and preview of a live show (``show``), and/or the monitor of a runs folder."""

    def __init__(self, show: Show | None = None, host: str = "127.0.0.1", port: int = 8080,
                 runs: Path | None = None, token: str | None = None, start: bool = True):
        """``start`` False: build the app only (tests run it with aiohttp's test client, and set ``loop``)."""
        from aiohttp import web

        self.web = web
        self.show = show
        self.runs = runs
        self.host = host
        self.token = token if token is not None else (None if is_loopback(host) else secrets.token_urlsafe(12))
        self.bucket = Bucket()
        self.sockets: set = set()
        self.previews = 0
        self.closed = False
        self._pending: dict[str, Any] = {}          # changes of the frame, for the WebSocket clients
        self._lock = threading.Lock()
        self._latest: tuple[np.ndarray, int, float] | None = None  # (frame, index, wall time it was made)
        self._encoders: dict[int, "_Encoder"] = {}
        # previews are encoded on one thread at the lowest priority: what the frame loop leaves
        self.encoder_pool = ThreadPoolExecutor(1, thread_name_prefix="preview", initializer=background_priority)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        self._routes(self.app)
        self.url = ""
        self.port = port
        if start:
            self._start(host, port)

    def _start(self, host: str, port: int) -> None:
        """Serve on a thread of its own with its own event loop; ValueError in one line when it cannot."""
        web = self.web
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        started = threading.Event()
        failure: list[BaseException] = []

        def serve():
            background_priority(WEB_NICE)  # the show's threads come first; a request waits a moment
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self.runner.setup())
                site = web.TCPSite(self.runner, host, port, reuse_address=True)
                self.loop.run_until_complete(site.start())
                self.port = self.runner.addresses[0][1]
            except BaseException as exc:  # noqa: BLE001 - reported to the caller's thread
                failure.append(exc)
                started.set()
                return
            started.set()
            self.loop.create_task(self.status_loop())
            self.loop.run_forever()

        self._thread = threading.Thread(target=serve, name="web", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            exc = failure[0]
            why = "is in use (another vj?)" if isinstance(exc, OSError) and exc.errno == 98 else f"cannot be opened ({exc})"
            raise ValueError(f"web address {host}:{port} {why}: pick another --web port")
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    # -- from the frame loop: one cheap call a frame
    def frame(self, frame: np.ndarray, index: int) -> None:
        """The show's latest frame (held by reference: the engine makes a new array every frame) and the end
        of the frame's changes: they go to the WebSocket clients as one batch."""
        self._latest = (frame, index, time.time())
        with self._lock:
            batch, self._pending = self._pending, {}
        if (batch or self._encoders) and not self.closed and self.loop is not None:
            self.loop.call_soon_threadsafe(self._after_frame, batch)

    def on_change(self, name: str, value: Any) -> None:
        """A store listener: the change goes out with the frame's batch (the last value of a name wins)."""
        with self._lock:
            self._pending[name] = value

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not hasattr(self, "_thread"):
            return

        async def stop():
            for ws in list(self.sockets):
                await ws.close()
            await self.runner.cleanup()
            self.loop.stop()
        asyncio.run_coroutine_threadsafe(stop(), self.loop)
        self._thread.join(timeout=10)
        self.encoder_pool.shutdown(wait=True)

    # -- the loop's side
    def _after_frame(self, batch: dict) -> None:
        if batch:
            self._broadcast({"type": "changes", **split_changes(batch)})
        for enc in self._encoders.values():
            enc.wake()

    def _broadcast(self, message: dict) -> None:
        data = json.dumps(message)
        for ws in list(self.sockets):
            if not ws.closed:
                asyncio.ensure_future(_send(ws, data))

    async def status_loop(self) -> None:
        """The show's status to every WebSocket client, 4 times a second (fps, render p95, beat, drops...)."""
        while not self.closed:
            await asyncio.sleep(0.25)
            if self.sockets and self.show is not None:
                try:
                    self._broadcast({"type": "status", **self.show.status()})
                except Exception as exc:  # noqa: BLE001 - a status read racing the frame loop
                    log.debug("web status: %s", exc)

    # -- middleware: token, origin, rate, JSON errors
    @staticmethod
    def _error(status: int, message: str):
        from aiohttp import web

        return web.json_response({"error": message}, status=status)

    async def _guard_inner(self, request, handler):
        who = request.remote or "?"
        if not self.bucket.take(who):
            self._count("rate limited")
            return self._error(429, "too many requests: slow down")
        if self.token is not None:
            given = (request.query.get("token") or request.cookies.get("vj_token")
                     or request.headers.get("Authorization", "").removeprefix("Bearer "))
            if not secrets.compare_digest(str(given), self.token):
                self._count("no token")
                return self._error(401, "this show needs its token (the URL printed when it started)")
        origin = request.headers.get("Origin")
        upgrading = request.headers.get("Upgrade", "").lower() == "websocket"
        if origin is not None and (request.method not in ("GET", "HEAD") or upgrading):
            if origin != f"{request.scheme}://{request.host}":
                self._count("foreign origin")
                return self._error(403, f"requests from {origin[:80]} are refused: use the show's own page")
        response = await handler(request)
        if self.token is not None and request.query.get("token") == self.token and request.path == "/":
            response.set_cookie("vj_token", self.token, httponly=True, samesite="Strict")
        return response

    @property
    def _guard(self):
        from aiohttp import web

        @web.middleware
        async def guard(request, handler):
            try:
                return await self._guard_inner(request, handler)
            except web.HTTPException as exc:
                if exc.status >= 400:
                    self._count("bad request")
                    return self._error(exc.status, exc.reason or "bad request")
                raise
        return guard

    def _count(self, reason: str) -> None:
        if self.show is not None:
            self.show.count(f"web: {reason}")

    # -- routes
    def _routes(self, app) -> None:
        r = app.router
        if self.show is not None:
            r.add_get("/", self._file("index.html"))
            r.add_get(API + "/state", self._state)
            r.add_get(API + "/schema", self._schema)
            r.add_get(API + "/status", self._status)
            r.add_put(API + "/params/{name}", self._put_param)
            r.add_get(API + "/ws", self._socket)
            r.add_get(API + "/preview.mjpeg", self._preview)
            r.add_get(API + "/preview.jpg", self._still)
            r.add_get(API + "/thumbnails/{genre}.jpg", self._thumbnail)
            r.add_post(API + "/key/{key}", self._key)
            r.add_post(API + "/{command}", self._command)
            r.add_post(API + "/{command}/{argument}", self._command)
        if self.runs is not None:
            r.add_get("/monitor" if self.show is not None else "/", self._file("monitor.html"))
            r.add_get(API + "/runs", self._runs)
            r.add_get(API + "/runs/{genre}/log", self._run_log)
            r.add_get(API + "/runs/{genre}/samples", self._run_samples)
            r.add_get(API + "/runs/{genre}/samples/{name}", self._run_sample)
        r.add_get("/page/{name}", self._static)
        r.add_route("*", "/{tail:.*}", self._not_found)

    def _file(self, name: str):
        async def handler(request):
            return self.web.FileResponse(PAGE / name, headers={"Cache-Control": "no-store"})
        return handler

    async def _static(self, request):
        name = request.match_info["name"]
        path = PAGE / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return self._error(404, f"no page file {name[:60]!r}")
        return self.web.FileResponse(path, headers={"Cache-Control": "no-store"})

    async def _not_found(self, request):
        self._count("unknown path")
        known = f"GET {API}/schema" if self.show is not None else f"the monitor's GET {API}/runs"  # what is served
        return self._error(404, f"no such endpoint: {request.method} {request.path[:80]} (see {known})")

    async def _state(self, request):
        return self.web.json_response(self.show.state())

    async def _schema(self, request):
        return self.web.json_response(self.show.schema())

    async def _status(self, request):
        return self.web.json_response(self.show.status())

    async def _body(self, request) -> dict:
        try:
            data = await request.json()
        except self.web.HTTPRequestEntityTooLarge:
            raise
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise self.web.HTTPBadRequest(reason="the body is not JSON") from None
        if not isinstance(data, dict):
            raise self.web.HTTPBadRequest(reason='expected a JSON object, e.g. {"value": 0.5}')
        return data

    async def _put_param(self, request):
        data = await self._body(request)
        if "value" not in data:
            return self._error(400, 'expected {"value": ...}')
        ok, result = self.show.set(request.match_info["name"], data["value"], f"web {request.remote}")
        if not ok:
            self._count("bad request")
            return self._error(404 if "not a parameter" in result else 400, result)
        return self.web.json_response({"name": request.match_info["name"], "value": result})

    async def _command(self, request):
        name, arg = request.match_info["command"], request.match_info.get("argument")
        if arg is None and request.can_read_body:
            data = await self._body(request)
            arg = data.get("argument")
        error = self.show.command(name, None if arg is None else str(arg), f"web {request.remote}")
        if error:
            self._count("bad request")
            return self._error(404 if error.startswith(("unknown", "no such")) else 400, error)
        return self.web.json_response({"command": name, "argument": arg}, status=202)

    async def _key(self, request):
        if not self.show.press(request.match_info["key"], f"web {request.remote}"):
            return self._error(404, f"key {request.match_info['key'][:20]!r} is not bound in this scene")
        return self.web.json_response({"key": request.match_info["key"]}, status=202)

    async def _thumbnail(self, request):
        genre = request.match_info["genre"]
        data = await self.loop.run_in_executor(None, self.show.thumbnail, genre)
        if data is None:
            return self._error(404, f"no thumbnail for genre {genre[:40]!r}")
        return self.web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "max-age=60"})

    async def _socket(self, request):
        web = self.web
        if len(self.sockets) >= MAX_SOCKETS:
            self._count("too many clients")
            return self._error(503, f"at most {MAX_SOCKETS} control clients at once")
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        self.sockets.add(ws)
        who = f"web {request.remote}"
        try:
            await ws.send_str(json.dumps({"type": "state", **self.show.state()}))
            async for msg in ws:
                if msg.type != web.WSMsgType.TEXT:
                    continue
                if not self.bucket.take(request.remote or "?"):
                    self._count("rate limited")
                    continue
                reply = self._socket_message(msg.data, who)
                if reply is not None:
                    await ws.send_str(json.dumps(reply))
        finally:
            self.sockets.discard(ws)
        return ws

    def _socket_message(self, text: str, who: str) -> dict | None:
        """A client's message: ``{"type": "param", "name", "value"}``, ``{"type": "command", "name",
        "argument"}`` or ``{"type": "key", "key"}``; an error comes back to that client only."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, ValueError):
            data = None
        if not isinstance(data, dict):
            self._count("bad request")
            return {"type": "error", "error": "messages are JSON objects with a type"}
        kind = data.get("type")
        if kind == "param":
            ok, result = self.show.set(str(data.get("name")), data.get("value"), who)
            error = None if ok else result
        elif kind == "command":
            arg = data.get("argument")
            error = self.show.command(str(data.get("name")), None if arg is None else str(arg), who)
        elif kind == "key":
            error = None if self.show.press(str(data.get("key")), who) else f"key {str(data.get('key'))[:20]!r} is not bound"
        else:
            error = f"unknown message type {str(kind)[:20]!r} (param, command, key)"
        if error:
            self._count("bad request")
            return {"type": "error", "error": error}
        return None

    # -- preview
    def _settings(self, request) -> tuple[float, int]:
        try:
            fps = min(30.0, max(1.0, float(request.query.get("fps", PREVIEW_FPS))))
            width = min(1280, max(64, int(request.query.get("width", PREVIEW_WIDTH))))
        except ValueError:
            raise self.web.HTTPBadRequest(reason="fps and width are numbers") from None
        return fps, width // 16 * 16

    def _encoder(self, width: int) -> "_Encoder":
        if width not in self._encoders:
            if len(self._encoders) >= 3:  # a few widths at most: each costs an encode per frame
                width = min(self._encoders, key=lambda w: abs(w - width))
            else:
                self._encoders[width] = _Encoder(self, width)
        return self._encoders[width]

    async def _preview(self, request):
        web = self.web
        if self.previews >= MAX_PREVIEWS:
            self._count("too many clients")
            return self._error(503, f"at most {MAX_PREVIEWS} previews at once")
        fps, width = self._settings(request)
        enc = self._encoder(width)
        resp = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame",
                                           "Cache-Control": "no-store"})
        await resp.prepare(request)
        self.previews += 1
        enc.rates[id(resp)] = fps
        last = -1
        try:
            while not self.closed:
                jpeg, last = await enc.next(last)
                await resp.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " +
                                 str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.previews -= 1
            enc.rates.pop(id(resp), None)
        return resp

    async def _still(self, request):
        _, width = self._settings(request)
        enc = self._encoder(width)
        enc.rates[id(request)] = 30.0
        try:
            jpeg, _ = await asyncio.wait_for(enc.next(-1), 5)
        except asyncio.TimeoutError:
            return self._error(503, "no frame yet")
        finally:
            enc.rates.pop(id(request), None)
        return self.web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    # -- the training monitor
    async def _runs(self, request):
        return self.web.json_response(await self.loop.run_in_executor(None, runs_summary, self.runs))

    def _run(self, request):
        try:
            return GanRun.of(self.runs, request.match_info["genre"])
        except ValueError as exc:
            raise self.web.HTTPBadRequest(reason=str(exc)) from None

    async def _run_log(self, request):
        return self.web.json_response(await self.loop.run_in_executor(None, read_log, self._run(request)))

    async def _run_samples(self, request):
        run = self._run(request)
        names = [p.name for p in run.sample_files()]
        return self.web.json_response({"genre": run.genre, "samples": names})

    async def _run_sample(self, request):
        run, name = self._run(request), request.match_info["name"]
        path = run.sample_dir() / name
        if "/" in name or not name.startswith("epoch_") or not path.is_file():
            return self._error(404, f"no sample {name[:60]!r}")
        return self.web.FileResponse(path, headers={"Cache-Control": "max-age=3600"})


async def _send(ws, data: str) -> None:
    try:
        await ws.send_str(data)
    except (ConnectionResetError, RuntimeError):
        pass


def split_changes(batch: dict) -> dict:
    """A frame's changes as ``{"params": {name: number}, "state": {name: text}}``."""
    params = {k: v for k, v in batch.items() if not isinstance(v, str)}
    state = {k: v for k, v in batch.items() if isinstance(v, str)}
    return {"params": params, "state": state}


class _Encoder:
    """JPEGs of the latest frame at one width, made on a worker thread at most as often as its fastest client
    asks, and only while a client watches: the frame loop never encodes, and an idle preview costs nothing."""

    def __init__(self, server: WebServer, width: int):
        self.server, self.width = server, width
        self.rates: dict[int, float] = {}   # client id -> frames a second it wants
        self.jpeg: tuple[bytes, int] | None = None
        self.changed = asyncio.Event()
        self.busy = False
        self.last = 0.0                      # when the last encode started

    @property
    def clients(self) -> int:
        return len(self.rates)

    def wake(self) -> None:
        if not self.rates or self.busy or time.monotonic() - self.last < 1 / max(self.rates.values()) - 0.004:
            return
        latest = self.server._latest
        if latest is not None and (self.jpeg is None or self.jpeg[1] != latest[1]):
            self.busy, self.last = True, time.monotonic()
            asyncio.ensure_future(self._encode(latest))

    async def _encode(self, latest) -> None:
        frame, index, _ = latest
        try:
            jpeg = await self.server.loop.run_in_executor(self.server.encoder_pool, encode_jpeg, frame, self.width)
            self.jpeg = (jpeg, index)
            self.changed.set()
            self.changed = asyncio.Event()
        finally:
            self.busy = False

    async def next(self, last: int) -> tuple[bytes, int]:
        """The newest JPEG after frame ``last`` (waits for one)."""
        while self.jpeg is None or self.jpeg[1] == last:
            self.wake()
            await asyncio.wait_for(self.changed.wait(), 5)
        return self.jpeg


def encode_jpeg(frame: np.ndarray, width: int, quality: int = 80) -> bytes:
    import cv2

    h, w = frame.shape[:2]
    if w > width:
        frame = cv2.resize(frame, (width, max(2, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes()


def print_address(server: WebServer) -> None:
    """The URL, and beyond loopback a QR code of it for a phone or tablet."""
    log.info("web: control page at %s", server.url)
    if server.token is not None:
        try:
            import io

            import segno

            out = io.StringIO()
            segno.make(server.url, error="l").terminal(out=out, compact=True)
            log.info("web: scan to open it on a phone or tablet:\n%s", out.getvalue())
        except ImportError:
            pass
