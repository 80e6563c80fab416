"""Scenes, cue lists and key mappings: TOML files -> validated objects.

A scene names its genres (each: clips, a generator checkpoint, a mosaic), its layers (source, blend
mode, opacity, deck, effects), master effects, tempo, genre switching and keys. Relative paths are
taken from the scene's ``root`` (default: the scene file's folder). An unknown key or a bad value is
one ``ConfigError`` line naming the file, key and value; a missing media file is a warning (that layer
shows black) so a show never refuses to start over one lost clip.
"""
from __future__ import annotations

import glob
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vj.config import ConfigError, read_toml
from vj.control.audio import AudioRoute
from vj.effects import BLEND_MODES, EFFECTS
from vj.sources import SOURCE_KINDS

log = logging.getLogger(__name__)


@dataclass
class GenreSpec:
    name: str
    clips: list[Path] = field(default_factory=list)
    generator: Path | None = None
    mosaic: Path | None = None


@dataclass
class EffectSpec:
    id: str                        # parameter prefix: fx.<id>.<input>
    type: str
    values: dict[str, float]


@dataclass
class LayerSpec:
    name: str
    source: str
    blend: str = "normal"
    opacity: float = 1.0
    deck: str = ""                 # "A", "B" or "" (both): the crossfader's side
    settings: dict[str, float] = field(default_factory=dict)  # source parameters' initial values
    effects: list[EffectSpec] = field(default_factory=list)


@dataclass
class Scene:
    path: Path
    size: tuple[int, int] = (1280, 720)
    fps: float = 30.0
    render_scale: float = 1.0      # layers and effects render at this share of the output size
    bpm: float = 120.0
    genres: dict[str, GenreSpec] = field(default_factory=dict)
    genre: str = ""                # the genre at start
    fade: float = 1.0              # seconds of crossfade on a genre switch
    autopilot_bars: int = 0        # switch genre every N bars (4 beats); 0: off
    layers: list[LayerSpec] = field(default_factory=list)
    effects: list[EffectSpec] = field(default_factory=list)   # master effects, after compositing
    keys: dict[str, str] = field(default_factory=dict)         # key name -> action
    initial: dict[str, Any] = field(default_factory=dict)      # param name -> value at start
    missing: list[str] = field(default_factory=list)           # warnings: media that is not there
    audio: AudioRoute = field(default_factory=AudioRoute)      # what the audio level and onsets drive


def parse_size(text: str, where: str = "size") -> tuple[int, int]:
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not WIDTHxHEIGHT (e.g. 1920x1080)") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise ConfigError(f"{where}: {text!r} must be even and at least 16x16")
    return w, h


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def _effects(items: list, where: str, prefix: str) -> list[EffectSpec]:
    out = []
    for i, item in enumerate(items):
        w = f"{where}[{i}]"
        if not isinstance(item, dict) or "type" not in item:
            raise ConfigError(f"{w}: an effect needs type = one of {', '.join(EFFECTS)}")
        fx = EFFECTS.get(item["type"])
        if fx is None:
            raise ConfigError(f"{w}: type = {item['type']!r} is not an effect ({', '.join(EFFECTS)})")
        values = {k: v for k, v in item.items() if k not in ("type", "id")}
        _check_keys(values, {inp.name for inp in fx.inputs}, f"{w} ({fx.name})")
        for k, v in values.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise ConfigError(f"{w}: {k} = {v!r} is not a number")
        out.append(EffectSpec(str(item.get("id", f"{prefix}{fx.name}")), fx.name, values))
    return out


def load_scene(path: str | Path) -> Scene:
    path = Path(path)
    data = read_toml(path)
    where = str(path)
    _check_keys(data, {"root", "output", "tempo", "genres", "genre", "layers", "effects", "keys", "initial", "audio"},
                where)
    root = (path.parent / data.get("root", ".")).resolve()
    scene = Scene(path=path)
    out = data.get("output", {})
    _check_keys(out, {"size", "fps", "render_scale"}, f"{where} [output]")
    scene.render_scale = _number(out.get("render_scale", 1.0), f"{where} [output] render_scale", 0.25, 1.0)
    if "size" in out:
        scene.size = parse_size(out["size"], f"{where} [output] size")
    scene.fps = _number(out.get("fps", scene.fps), f"{where} [output] fps", 1, 240)
    tempo = data.get("tempo", {})
    _check_keys(tempo, {"bpm", "autopilot_bars"}, f"{where} [tempo]")
    scene.bpm = _number(tempo.get("bpm", scene.bpm), f"{where} [tempo] bpm", 20, 300)
    scene.autopilot_bars = int(_number(tempo.get("autopilot_bars", 0), f"{where} [tempo] autopilot_bars", 0, 1024))

    for name, g in data.get("genres", {}).items():
        w = f"{where} [genres.{name}]"
        _check_keys(g, {"clips", "generator", "mosaic"}, w)
        spec = GenreSpec(name)
        for pattern in g.get("clips", []):
            matches = sorted(glob.glob(str(root / pattern)))
            if not matches:
                scene.missing.append(f"{w} clips: {pattern!r} matches no file")
            spec.clips += [Path(m) for m in matches]
        for key in ("generator", "mosaic"):
            if key in g:
                p = root / g[key]
                setattr(spec, key, p)
                if not p.exists():
                    scene.missing.append(f"{w} {key} = {g[key]!r}: no such file")
        scene.genres[name] = spec

    gsw = data.get("genre", {})
    _check_keys(gsw, {"initial", "fade"}, f"{where} [genre]")
    scene.genre = gsw.get("initial", next(iter(scene.genres), ""))
    if scene.genres and scene.genre not in scene.genres:
        raise ConfigError(f"{where} [genre] initial = {scene.genre!r} is not a genre ({', '.join(scene.genres)})")
    scene.fade = _number(gsw.get("fade", scene.fade), f"{where} [genre] fade", 0, 60)

    names = set()
    for i, layer in enumerate(data.get("layers", [])):
        w = f"{where} [[layers]][{i}]"
        _check_keys(layer, {"name", "source", "blend", "opacity", "deck", "settings", "effects"}, w)
        name = layer.get("name", f"layer{i}")
        if name in names:
            raise ConfigError(f"{w}: name = {name!r} is used twice")
        names.add(name)
        if layer.get("source") not in SOURCE_KINDS:
            raise ConfigError(f"{w}: source = {layer.get('source')!r} is not one of {', '.join(SOURCE_KINDS)}")
        if layer.get("blend", "normal") not in BLEND_MODES:
            raise ConfigError(f"{w}: blend = {layer['blend']!r} is not one of {', '.join(BLEND_MODES)}")
        if layer.get("deck", "") not in ("", "A", "B"):
            raise ConfigError(f"{w}: deck = {layer['deck']!r} must be \"A\", \"B\" or \"\"")
        scene.layers.append(LayerSpec(
            name=name, source=layer["source"], blend=layer.get("blend", "normal"),
            opacity=_number(layer.get("opacity", 1.0), f"{w} opacity", 0, 1), deck=layer.get("deck", ""),
            settings=dict(layer.get("settings", {})), effects=_effects(layer.get("effects", []), f"{w} effects",
                                                                       f"{name}_")))
    scene.effects = _effects(data.get("effects", []), f"{where} [[effects]]", "")
    scene.keys = {str(k): str(v) for k, v in data.get("keys", {}).items()}
    scene.initial = dict(data.get("initial", {}))
    audio = data.get("audio", {})
    _check_keys(audio, {"level", "onset", "gain"}, f"{where} [audio]")
    scene.audio = AudioRoute(str(audio.get("level", "")), str(audio.get("onset", "")),
                             _number(audio.get("gain", 1.0), f"{where} [audio] gain", 0, 100))
    for line in scene.missing:
        log.warning("scene: %s", line)
    return scene


def _number(value: Any, where: str, lo: float, hi: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{where} = {value!r}: expected a number from {lo:g} to {hi:g}")
    return float(value)


# ---------------------------------------------------------------- cue lists
@dataclass
class Cue:
    time: float                  # seconds (beats are converted with the scene's BPM)
    name: str = ""
    genre: str | None = None
    set: dict[str, Any] = field(default_factory=dict)
    commands: list[tuple[str, Any]] = field(default_factory=list)  # e.g. ("tap", None), ("jump", None)


def load_cues(path: str | Path, bpm: float) -> list[Cue]:
    """``[[cue]]`` tables with ``at`` (seconds) or ``beat``, and ``genre``, ``set``, ``jump``, ``bpm``, ``name``."""
    path = Path(path)
    data = read_toml(path)
    _check_keys(data, {"cue"}, str(path))
    cues = []
    for i, c in enumerate(data.get("cue", [])):
        w = f"{path} [[cue]][{i}]"
        _check_keys(c, {"at", "beat", "name", "genre", "set", "jump", "bpm"}, w)
        if ("at" in c) == ("beat" in c):
            raise ConfigError(f"{w}: give exactly one of at (seconds) or beat")
        t = _number(c["at"], f"{w} at", 0, 1e7) if "at" in c else _number(c["beat"], f"{w} beat", 0, 1e7) * 60 / bpm
        commands = [("jump", None)] if c.get("jump") else []
        if "bpm" in c:
            commands.append(("bpm", _number(c["bpm"], f"{w} bpm", 20, 300)))
        cues.append(Cue(t, str(c.get("name", "")), c.get("genre"), dict(c.get("set", {})), commands))
    return sorted(cues, key=lambda c: c.time)
