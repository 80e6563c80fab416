"""Keys: a scene's ``[keys]`` table (key name -> action), for the window and the web page alike.

Key names are pygame's (``"1"``, ``"space"``, ``"up"``, ``"["``); actions are ``vj.commands`` actions
(``genre plasma``, ``tap``, ``fx.glitch.on toggle``, ``master.fader+=0.1``). A press pushes the action's
event into the store, exactly as OSC or MIDI would.
"""
from __future__ import annotations

from typing import Any

from vj.commands import parse_action
from vj.params import ParamStore

# pygame key names that a browser's KeyboardEvent.key spells differently (the page maps them back)
BROWSER_NAMES = {"space": " ", "up": "ArrowUp", "down": "ArrowDown", "left": "ArrowLeft", "right": "ArrowRight",
                 "return": "Enter", "escape": "Escape", "tab": "Tab", "backspace": "Backspace"}


class KeyBindings:
    def __init__(self, keys: dict[str, str]):
        """Raises ValueError naming the key for an action that does not parse."""
        self.actions: dict[str, tuple[str, Any]] = {}
        for key, action in keys.items():
            try:
                self.actions[key] = parse_action(action)
            except ValueError as exc:
                raise ValueError(f"key {key!r}: {exc}") from None

    def press(self, key: str, store: ParamStore, source: str = "key") -> bool:
        """Push the key's action; False when the key is not bound."""
        bound = self.actions.get(key)
        if bound is None:
            return False
        store.push(*bound, source)
        return True

    def help_lines(self) -> list[str]:
        return [f"{key:>8}  {name}{'' if value is None else ' ' + str(value)}" for key, (name, value) in
                self.actions.items()]

    def for_browser(self) -> dict[str, str]:
        """Browser key name -> pygame key name, for the web page's keyboard."""
        return {BROWSER_NAMES.get(k, k): k for k in self.actions}
