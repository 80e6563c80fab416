"""The pygame window: shows frames, hands key presses to the scene's key bindings, draws the help overlay,
and keeps the mouse pointer off the picture (hidden in fullscreen, and after it rests a moment).

Closing the window or pressing Escape ends the show cleanly.
"""
from __future__ import annotations

import logging
import os
import time

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
        pygame.font.init()
        flags = pygame.FULLSCREEN if fullscreen else 0
        if fullscreen:
            flags |= pygame.SCALED
        self.screen = pygame.display.set_mode(size, flags, display=display)
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
        surf = pg.image.frombuffer(np.ascontiguousarray(frame), self.size, "RGB")
        self.screen.blit(surf, (0, 0))
        if self.help:
            self._overlay()
        pg.display.flip()

    def _overlay(self) -> None:
        pg = self.pg
        lines = ["keys (h: hide help, Esc: quit)"] + self.keys.help_lines() + [self.store.status()]
        box = pg.Surface((min(self.size[0], 520), 22 * len(lines) + 12), pg.SRCALPHA)
        box.fill((0, 0, 0, 180))
        for i, line in enumerate(lines):
            box.blit(self.font.render(line, True, (255, 255, 255)), (10, 6 + 22 * i))
        self.screen.blit(box, (10, 10))

    def screenshot(self) -> np.ndarray:
        """What the window shows now, as (H, W, 3) uint8."""
        return np.ascontiguousarray(self.pg.surfarray.array3d(self.screen).transpose(1, 0, 2))

    def close(self) -> None:
        self.pg.display.quit()


def _is_macos() -> bool:
    import sys

    return sys.platform == "darwin"
