"""The pygame window: shows frames, turns key presses into events, draws the help overlay.

Keys act at once: each press becomes an event in the parameter store (or a genre/cue/tap command).
Closing the window or pressing Escape ends the show cleanly.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from vj.params import ParamStore, parse_action

log = logging.getLogger(__name__)


class WindowOutput:
    def __init__(self, size: tuple[int, int], store: ParamStore, keys: dict[str, str], fullscreen: bool = False,
                 display: int = 0, title: str = "reframe-vj"):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pg = pygame
        pygame.display.init()
        pygame.font.init()
        flags = pygame.FULLSCREEN if fullscreen else 0
        if fullscreen:
            flags |= pygame.SCALED
        self.screen = pygame.display.set_mode(size, flags, display=display)
        pygame.display.set_caption(title)
        self.size = size
        self.store = store
        self.actions = {}
        for key, action in keys.items():
            try:
                code = pygame.key.key_code(key)
            except ValueError:
                log.warning("keys: %r is not a key name; ignored", key)
                continue
            self.actions[code] = parse_action(action)
        self.help = False
        self.font = pygame.font.Font(None, 24)
        self.present_ms = 0.0

    def write(self, frame: np.ndarray, t: float) -> None:
        pg = self.pg
        for ev in pg.event.get():
            if ev.type == pg.QUIT or (ev.type == pg.KEYDOWN and ev.key == pg.K_ESCAPE):
                raise StopIteration
            if ev.type == pg.KEYDOWN:
                if ev.key in (pg.K_h, pg.K_F1) and ev.key not in self.actions:
                    self.help = not self.help
                elif ev.key in self.actions:
                    name, value = self.actions[ev.key]
                    self.store.push(name, value, "key")
        surf = pg.image.frombuffer(np.ascontiguousarray(frame), self.size, "RGB")
        self.screen.blit(surf, (0, 0))
        if self.help:
            self._overlay()
        pg.display.flip()

    def _overlay(self) -> None:
        pg = self.pg
        lines = ["keys (h: hide help, Esc: quit)"] + [
            f"{pg.key.name(code):>8}  {name}{'' if value is None else ' ' + str(value)}"
            for code, (name, value) in self.actions.items()] + [self.store.status()]
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
