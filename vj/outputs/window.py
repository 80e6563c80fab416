"""The pygame window: shows frames, hands key presses to the scene's key bindings, draws the help overlay,
and keeps the mouse pointer off the picture (hidden in fullscreen, and after it rests a moment).

Fullscreen scales the show to the screen, keeping its shape. SDL does that on the graphics card once a window
manager has made the window fullscreen; on an X server without one (a bare `xinit` kiosk, a player box) the
request goes unanswered, the window keeps the show's size and SDL's scaling crops the picture, so there the
window is opened at the screen's size and each frame is scaled into it here (about 2 ms at 1080p).

Closing the window or pressing Escape ends the show cleanly.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import time

import cv2
import numpy as np

from vj.control.keys import KeyBindings
from vj.params import ParamStore

log = logging.getLogger(__name__)


CURSOR_IDLE = 2.0  # seconds without moving before the mouse pointer hides (always hidden in fullscreen)


class NoDisplay(RuntimeError):
    """There is no screen to open a window on."""


class WindowOutput:
    def __init__(self, size: tuple[int, int], store: ParamStore, keys: KeyBindings, fullscreen: bool = False,
                 display: int = 0, title: str = "reframe-vj"):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pg = pygame
        if not os.environ.get("SDL_VIDEODRIVER") and not os.environ.get("DISPLAY") \
                and not os.environ.get("WAYLAND_DISPLAY") and os.name == "posix" and not _is_macos():
            raise NoDisplay("no display to open a window on (DISPLAY is not set): add --headless, "
                            "or set DISPLAY")
        try:
            pygame.display.init()
        except pygame.error as exc:
            raise NoDisplay(f"cannot open a window ({exc}): add --headless, or set DISPLAY") from None
        if pygame.display.get_driver() in ("offscreen", "dummy") and "SDL_VIDEODRIVER" not in os.environ:
            pygame.display.quit()
            raise NoDisplay("no display to open a window on: add --headless, or set DISPLAY")
        screens = pygame.display.get_num_displays()
        if not 0 <= display < screens:
            pygame.display.quit()
            raise NoDisplay(f"--display {display}: this machine has {screens} display{'s' * (screens != 1)} "
                            f"(0-{screens - 1})")
        pygame.font.init()
        self.place: tuple[int, int, int, int] | None = None  # (x, y, w, h) a frame is scaled to, when it is
        if not fullscreen:
            self.screen = pygame.display.set_mode(size, 0, display=display)
        elif pygame.display.get_driver() == "x11" and x11_window_manager() is False:
            screen = pygame.display.get_desktop_sizes()[display]
            self.screen = pygame.display.set_mode(screen, pygame.FULLSCREEN, display=display)
            self.place = fit(size, screen)
            log.info("window: no window manager on this X display; the show is scaled to its %dx%d screen",
                     *screen)
        else:
            self.screen = pygame.display.set_mode(size, pygame.FULLSCREEN | pygame.SCALED, display=display)
        pygame.display.set_caption(title)
        self.size = size
        self.store = store
        self.keys = keys
        for key in keys.actions:
            try:
                pygame.key.key_code(key)
            except ValueError:
                log.warning("keys: %r is not a key name; ignored", key)
        self.help = False
        self.font = pygame.font.Font(None, 24)
        self.fullscreen = fullscreen
        self._moved = time.monotonic()  # the pointer's last move: no arrow over the projection
        pygame.mouse.set_visible(not fullscreen)

    def write(self, frame: np.ndarray, t: float) -> None:
        pg = self.pg
        for ev in pg.event.get():
            if ev.type == pg.QUIT or (ev.type == pg.KEYDOWN and ev.key == pg.K_ESCAPE):
                raise StopIteration
            if ev.type == pg.KEYDOWN:
                name = pg.key.name(ev.key)
                if not self.keys.press(name, self.store) and ev.key in (pg.K_h, pg.K_F1):
                    self.help = not self.help
            elif ev.type == pg.MOUSEMOTION:
                self._moved = time.monotonic()
        shown = not self.fullscreen and time.monotonic() - self._moved < CURSOR_IDLE
        if pg.mouse.get_visible() != shown:
            pg.mouse.set_visible(shown)
        if self.place is None:
            self.screen.blit(pg.image.frombuffer(np.ascontiguousarray(frame), self.size, "RGB"), (0, 0))
        else:
            x, y, w, h = self.place
            scaled = cv2.resize(np.ascontiguousarray(frame), (w, h), interpolation=cv2.INTER_LINEAR)
            self.screen.blit(pg.image.frombuffer(scaled, (w, h), "RGB"), (x, y))
        if self.help:
            self._overlay()
        pg.display.flip()

    def _overlay(self) -> None:
        pg = self.pg
        lines = ["keys (h: hide help, Esc: quit)"] + self.keys.help_lines() + [self.store.status()]
        x, y, w, _ = self.place or (0, 0, *self.size)  # on the picture: a frame paints over it once hidden
        box = pg.Surface((min(w, 520), 22 * len(lines) + 12), pg.SRCALPHA)
        box.fill((0, 0, 0, 180))
        for i, line in enumerate(lines):
            box.blit(self.font.render(line, True, (255, 255, 255)), (10, 6 + 22 * i))
        self.screen.blit(box, (x + 10, y + 10))

    def screenshot(self) -> np.ndarray:
        """What the window shows now, as (H, W, 3) uint8."""
        return np.ascontiguousarray(self.pg.surfarray.array3d(self.screen).transpose(1, 0, 2))

    def close(self) -> None:
        self.pg.display.quit()


def fit(size: tuple[int, int], screen: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x, y, w, h): the largest ``size``-shaped rectangle centred on ``screen`` (black bars on two sides)."""
    scale = min(screen[0] / size[0], screen[1] / size[1])
    w, h = max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
    return (screen[0] - w) // 2, (screen[1] - h) // 2, w, h


def x11_window_manager(display: str | None = None) -> bool | None:
    """Whether a window manager runs on the X display (``DISPLAY`` when None): one that follows the EWMH
    (every current one) names its check window on the root window. None: no Xlib, or the display won't open."""
    try:
        x = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    except OSError:
        return None
    x.XOpenDisplay.restype, x.XOpenDisplay.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    x.XInternAtom.restype, x.XInternAtom.argtypes = ctypes.c_ulong, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x.XDefaultRootWindow.restype, x.XDefaultRootWindow.argtypes = ctypes.c_ulong, [ctypes.c_void_p]
    ulong, ptr = ctypes.c_ulong, ctypes.POINTER
    x.XGetWindowProperty.argtypes = [ctypes.c_void_p, ulong, ulong, ctypes.c_long, ctypes.c_long, ctypes.c_int,
                                     ulong, ptr(ulong), ptr(ctypes.c_int), ptr(ulong), ptr(ulong),
                                     ptr(ctypes.c_void_p)]
    x.XFree.argtypes, x.XCloseDisplay.argtypes = [ctypes.c_void_p], [ctypes.c_void_p]
    d = x.XOpenDisplay(display.encode() if display else None)
    if not d:
        return None
    try:
        atom = x.XInternAtom(d, b"_NET_SUPPORTING_WM_CHECK", 1)  # only if it exists: no WM ever ran
        if not atom:
            return False
        kind, fmt, items, after, data = ulong(), ctypes.c_int(), ulong(), ulong(), ctypes.c_void_p()
        xa_window = 33
        if x.XGetWindowProperty(d, x.XDefaultRootWindow(d), atom, 0, 1, 0, xa_window, ctypes.byref(kind),
                                ctypes.byref(fmt), ctypes.byref(items), ctypes.byref(after),
                                ctypes.byref(data)) != 0:
            return None
        if data:
            x.XFree(data)
        return items.value > 0
    finally:
        x.XCloseDisplay(d)


def _is_macos() -> bool:
    import sys

    return sys.platform == "darwin"
