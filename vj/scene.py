"""Scenes: TOML files -> validated objects.

A scene names its genres (each: clips, a generator checkpoint, a mosaic, or simply its run directories),
its layers (source, blend mode, opacity, deck, the source's settings, effects), master effects, tempo,
genre switching, keys and initial values. Relative paths are taken from the scene's ``root`` (default:
the scene file's folder). An unknown key or a bad value is one ``ConfigError`` line naming the file, key
and value; a missing media file is a warning (that layer shows black) so a show never refuses to start
over one lost clip. Sizes, rates and counts have limits, so a typo cannot ask for 200 GB of frames.

    [genres.particles]
    gan = "runs/gan/particles"       # a training run: its generator, learning clips and walks (those made
    mosaic = "runs/mosaic/all"       #   later too: each load looks again); a mosaic run directory
    clips = ["loops/particles/*.mp4"]  # more clips, played with the run's
"""
from __future__ import annotations

import glob
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vj.audio import FEATURES, ONSETS, AudioRoute
from vj.core import runs
from vj.core.config import PRESETS, ConfigError, check_keys, number, read_toml
from vj.core.media import VIDEO_EXTS, find_media
from vj.effects import BLEND_MODES, EFFECTS
from vj.sources import SOURCES, Genre
from vj.tempo import LEADERS

log = logging.getLogger(__name__)

MAX_SIZE = (7680, 4320)    # 8K UHD: the largest output a scene or --size may ask for
MAX_LAYERS = 32
MAX_EFFECTS = 16           # per layer, and on the master


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
    genres: dict[str, Genre] = field(default_factory=dict)
    genre: str = ""                # the genre at start
    fade: float = 1.0              # seconds of crossfade on a genre switch
    quantize: str = "off"          # a switch, cue or jump asked for starts on the next "beat" or "bar"
    tempo_source: str = "fixed"    # who leads the tempo: fixed, tap, midi, link or audio
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
    if max(w, h) > MAX_SIZE[0] or w * h > MAX_SIZE[0] * MAX_SIZE[1]:  # portrait 8K too
        raise ConfigError(f"{where}: {text!r} is larger than 8K ({MAX_SIZE[0]}x{MAX_SIZE[1]})")
    return w, h


def _table(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table, got {type(value).__name__}")
    return value


def _settings(values: dict, params, where: str) -> dict[str, float]:
    """A source's or an effect's settings: known names, values in range (clamped like a control's)."""
    known = {p.name: p for p in params}
    check_keys(values, known, where)
    out = {}
    for k, v in values.items():
        try:
            if isinstance(v, (dict, list)):
                raise ValueError(f"{v!r} is not a number")
            out[k] = known[k].coerce(v)
        except ValueError as exc:
            raise ConfigError(f"{where}: {k} = {v!r}: {exc}") from None
    return out


def _effects(items: Any, where: str, prefix: str) -> list[EffectSpec]:
    if not isinstance(items, list):
        raise ConfigError(f"{where}: expected an array of effects")
    if len(items) > MAX_EFFECTS:
        raise ConfigError(f"{where}: {len(items)} effects; at most {MAX_EFFECTS}")
    out = []
    for i, item in enumerate(items):
        w = f"{where}[{i}]"
        if not isinstance(item, dict) or "type" not in item:
            raise ConfigError(f"{w}: an effect needs type = one of {', '.join(EFFECTS)}")
        fx = EFFECTS.get(item["type"]) if isinstance(item["type"], str) else None
        if fx is None:
            raise ConfigError(f"{w}: type = {item['type']!r} is not an effect ({', '.join(EFFECTS)})")
        values = {k: v for k, v in item.items() if k not in ("type", "id")}
        out.append(EffectSpec(str(item.get("id", f"{prefix}{fx.name}")), fx.name,
                              _settings(values, fx.inputs, f"{w} ({fx.name})")))
    return out


def _genre(name: str, g: dict, root: Path, where: str, missing: list[str]) -> Genre:
    check_keys(g, {"clips", "generator", "mosaic", "gan"}, where)
    clips: list[Path] = []
    patterns = g.get("clips", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ConfigError(f"{where}: clips must be a list of file patterns")
    for pattern in patterns:
        matches = sorted(glob.glob(str(root / pattern)))
        if not matches:
            missing.append(f"{where} clips: {pattern!r} matches no file")
        clips += [Path(m) for m in matches]
    generator = mosaic = None
    if "gan" in g:  # a training run: the engine asks vj.core.runs for its files
        run = runs.GanRun(root / str(g["gan"]))
        if "generator" in g:
            raise ConfigError(f"{where}: give gan (a run) or generator (a file), not both")
        generator = run.generator()
        if generator is None:
            missing.append(f"{where} gan = {g['gan']!r}: no generator there (train it, or vj gan export)")
        clips = list(dict.fromkeys(run.clip_files() + clips))  # the run's own first; named twice, played once
    if "generator" in g:
        generator = root / str(g["generator"])
        if not generator.exists():
            missing.append(f"{where} generator = {g['generator']!r}: no such file")
    if "mosaic" in g:
        mosaic = root / str(g["mosaic"])
        if not mosaic.exists():
            missing.append(f"{where} mosaic = {g['mosaic']!r}: no such mosaic")
    named = frozenset(k for k, given in (("clips", "clips" in g), ("generator", "generator" in g or "gan" in g),
                                         ("mosaic", "mosaic" in g)) if given)
    return Genre(name, tuple(clips), generator, mosaic, named)


def load_scene(path: str | Path) -> Scene:
    path = Path(path)
    data = read_toml(path)
    where = str(path)
    check_keys(data, {"root", "output", "tempo", "genres", "genre", "layers", "effects", "keys", "initial",
                      "audio", "kind"}, where)
    if data.get("kind", "scene") != "scene":
        raise ConfigError(f"{where}: kind = {data['kind']!r}, expected \"scene\"")
    root = (path.parent / str(data.get("root", "."))).resolve()
    scene = Scene(path=path)
    out = _table(data.get("output", {}), f"{where} [output]")
    check_keys(out, {"size", "fps", "render_scale"}, f"{where} [output]")
    scene.render_scale = number(out.get("render_scale", 1.0), f"{where} [output] render_scale", 0.25, 1.0)
    if "size" in out:
        scene.size = parse_size(out["size"], f"{where} [output] size")
    scene.fps = number(out.get("fps", scene.fps), f"{where} [output] fps", 1, 240)
    tempo = _table(data.get("tempo", {}), f"{where} [tempo]")
    check_keys(tempo, {"bpm", "autopilot_bars", "source"}, f"{where} [tempo]")
    scene.tempo_source = str(tempo.get("source", "fixed"))
    if scene.tempo_source not in LEADERS:
        raise ConfigError(f"{where} [tempo] source = {scene.tempo_source!r} is not one of {', '.join(LEADERS)}")
    scene.bpm = number(tempo.get("bpm", scene.bpm), f"{where} [tempo] bpm", 20, 300)
    scene.autopilot_bars = int(number(tempo.get("autopilot_bars", 0), f"{where} [tempo] autopilot_bars", 0, 1024))

    for name, g in _table(data.get("genres", {}), f"{where} [genres]").items():
        w = f"{where} [genres.{name}]"
        runs.check_name(name, f"{w}: genre name")
        scene.genres[name] = _genre(name, _table(g, w), root, w, scene.missing)

    gsw = _table(data.get("genre", {}), f"{where} [genre]")
    check_keys(gsw, {"initial", "fade", "quantize"}, f"{where} [genre]")
    scene.quantize = str(gsw.get("quantize", "off"))
    if scene.quantize not in ("off", "beat", "bar"):
        raise ConfigError(f"{where} [genre] quantize = {scene.quantize!r} is not one of off, beat, bar")
    scene.genre = str(gsw.get("initial", next(iter(scene.genres), "")))
    if scene.genres and scene.genre not in scene.genres:
        raise ConfigError(f"{where} [genre] initial = {scene.genre!r} is not a genre ({', '.join(scene.genres)})")
    scene.fade = number(gsw.get("fade", scene.fade), f"{where} [genre] fade", 0, 60)

    layers = data.get("layers", [])
    if not isinstance(layers, list):
        raise ConfigError(f"{where}: layers must be an array of tables ([[layers]])")
    if len(layers) > MAX_LAYERS:
        raise ConfigError(f"{where}: {len(layers)} layers; at most {MAX_LAYERS}")
    for i, layer in enumerate(layers):
        w = f"{where} [[layers]][{i}]"
        _table(layer, w)
        check_keys(layer, {"name", "source", "blend", "opacity", "deck", "settings", "effects"}, w)
        name = str(layer.get("name", f"layer{i}"))
        runs.check_name(name, f"{w}: layer name")
        if any(other.name == name for other in scene.layers):
            raise ConfigError(f"{w}: name = {name!r} is used twice")
        kind = layer.get("source")
        if not isinstance(kind, str) or kind not in SOURCES:
            raise ConfigError(f"{w}: source = {kind!r} is not one of {', '.join(SOURCES)}")
        if not isinstance(layer.get("blend", "normal"), str) or layer.get("blend", "normal") not in BLEND_MODES:
            raise ConfigError(f"{w}: blend = {layer['blend']!r} is not one of {', '.join(BLEND_MODES)}")
        if layer.get("deck", "") not in ("", "A", "B"):
            raise ConfigError(f"{w}: deck = {layer['deck']!r} must be \"A\", \"B\" or \"\"")
        scene.layers.append(LayerSpec(
            name=name, source=kind, blend=layer.get("blend", "normal"),
            opacity=number(layer.get("opacity", 1.0), f"{w} opacity", 0, 1), deck=layer.get("deck", ""),
            settings=_settings(_table(layer.get("settings", {}), f"{w} settings"), SOURCES[kind].params,
                               f"{w} settings ({kind})"),
            effects=_effects(layer.get("effects", []), f"{w} effects", f"{name}_")))
    scene.effects = _effects(data.get("effects", []), f"{where} [[effects]]", "")
    scene.keys = {str(k): str(v) for k, v in _table(data.get("keys", {}), f"{where} [keys]").items()}
    scene.initial = dict(_table(data.get("initial", {}), f"{where} [initial]"))
    audio = _table(data.get("audio", {}), f"{where} [audio]")
    check_keys(audio, {*FEATURES, *ONSETS, "gain"}, f"{where} [audio]")
    scene.audio = AudioRoute({k: str(audio[k]) for k in FEATURES if k in audio},
                             {k: str(audio[k]) for k in ONSETS if k in audio},
                             number(audio.get("gain", 1.0), f"{where} [audio] gain", 0, 100))
    for line in scene.missing:
        log.warning("scene: %s", line)
    return scene


def frame_bytes(scene: Scene, size: tuple[int, int] | None = None, render_scale: float | None = None) -> int:
    """A rough peak of the frame memory a scene needs: each layer's frames (two, plus one per effect and
    a feedback's history), the mix and the master effects at the render size, and the outputs' copies at
    the output size. The engine checks it against the machine's memory before it starts."""
    w, h = size or scene.size
    s = render_scale or scene.render_scale

    def frames(effects: list[EffectSpec]) -> int:
        return len(effects) + sum(fx.type == "feedback" for fx in effects)

    n = 2 + frames(scene.effects) + sum(2 + frames(layer.effects) for layer in scene.layers)
    return int(n * (w * s) * (h * s) * 3 + 4 * w * h * 3)


# ---------------------------------------------------------------- a scene made from a runs folder
LOOK = PRESETS / "scenes" / "demo.toml"  # the layers, effects, keys and audio routes a made scene starts with
MAX_KEYED = 9                            # genres on the keys 1-9; more are switched by OSC, MIDI or the web


@dataclass
class MadeScene:
    text: str
    genres: list[str]
    mosaic: str | None                                    # the mosaic a genre without its own shows
    own_mosaics: list[str] = field(default_factory=list)  # genres with a mosaic of their own name
    notes: list[str] = field(default_factory=list)        # what was left out, and why


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


def _loop_patterns(videos: str) -> list[str]:
    """Glob patterns for the videos of a run's loops folder: one per folder and extension found (stills,
    which train a genre, are not clips)."""
    folder = Path(videos).expanduser()
    if not videos or not folder.is_dir():
        return []
    found = find_media([folder], VIDEO_EXTS)
    return sorted({os.path.join(glob.escape(str(f.parent)), "*" + f.suffix) for f in found})


def _genre_tables(gan_root: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """The trained genres under ``gan_root``, a ``[genres.NAME]`` table's lines for each (its run, its learning
    clips and loops), and notes on what was left out or is missing."""
    genres, tables, notes = [], [], []
    for path in sorted(p for p in gan_root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if gan_root.is_dir() else []:
        run = runs.GanRun(path)
        try:
            videos = str(read_toml(run.config).get("videos", "")) if run.config.exists() else ""
        except ConfigError as exc:
            notes.append(f"{path.name}: left out ({exc})")
            continue
        generator, own_clips = run.generator(), run.clip_files()
        # gan = the run brings its learning clips and walks, those made after this scene too; a run without
        # a generator (yet) is named by its clips
        clips = (["gan/" + glob.escape(path.name) + "/clips/*.mp4"] if own_clips and generator is None else []) \
            + _loop_patterns(videos)
        if generator is None and not clips:
            notes.append(f"{path.name}: left out (no generator, clips or loops yet: vj gan train ... --genre "
                         f"{path.name})")
            continue
        if generator is not None and not own_clips:
            notes.append(f"{path.name}: no learning clip or walk yet (vj gan clip {path.name}; vj gan walk "
                         f"{path.name}: the scene plays them once made)")
        genres.append(path.name)
        key = path.name if re.fullmatch(r"[A-Za-z0-9_-]+", path.name) else _toml_str(path.name)  # "a.b": one key
        tables.append([f"[genres.{key}]", *([f'gan = "gan/{path.name}"'] if generator else []),
                       *(["clips = [" + ", ".join(map(_toml_str, clips)) + "]"] if clips else [])])
    return genres, tables, notes


def _in_look(look: Path, header: str, tables: list[list[str]], genres: list[str], mosaics: bool) -> str:
    """``look``'s scene with ``header`` for its comments and root, ``tables`` for its genres, the first genre
    at the start, the genres on the keys 1-9, and its mosaic layer only where there are ``mosaics``."""
    blocks = re.split(r"(?m)^(?=\[)", look.read_text())
    out = [header, re.sub(r"(?m)^(#.*\n|root = .*\n)", "", blocks[0]).lstrip("\n")]
    wrote_genres = False
    for block in blocks[1:]:
        name = block.split("\n", 1)[0].strip()
        if name.startswith("[genres."):
            if not wrote_genres:
                out.append("\n\n".join("\n".join(lines) for lines in tables) + "\n\n")
                wrote_genres = True
            continue
        if name == "[[layers]]" and re.search(r'(?m)^source = "mosaic"', block) and not mosaics:
            continue
        if name == "[genre]":
            block = re.sub(r"(?m)^initial = .*$", f"initial = {_toml_str(genres[0])}", block)
        if name == "[keys]":
            kept = [line for line in block.split("\n")[1:] if not re.match(r'^"\d" = "genre ', line)]
            block = "\n".join([name, *(f'"{i}" = "genre {g}"' for i, g in enumerate(genres[:MAX_KEYED], 1)), *kept])
        out.append(block)
    return "".join(out)


def scene_from_runs(runs_dir: str | Path, scene_path: str | Path, mosaic: str | None = None,
                    look: Path = LOOK) -> MadeScene:
    """A scene that plays every trained genre of ``runs_dir``: its generator, its learning clips and walks,
    its loops, and a mosaic (the one named after it, else ``mosaic``, else the newest), with ``look``'s
    layers, effects, audio routes and keys, the genres on the keys 1-9. Paths are written relative to the
    scene file at ``scene_path`` (``root``); the loops' folders as the runs recorded them."""
    runs_dir, scene_path = Path(runs_dir).expanduser(), Path(scene_path).expanduser()
    mosaic_root = runs_dir / "mosaic"
    built = {p.name: p for p in sorted(mosaic_root.iterdir()) if runs.MosaicRun(p).grid_csv.exists()} \
        if mosaic_root.is_dir() else {}
    if mosaic is not None and mosaic not in built:
        raise ValueError(f"--mosaic {mosaic}: no built mosaic of that name in {mosaic_root} "
                         f"(built: {', '.join(built) or 'none'}; vj mosaic build VIDEOS --name {mosaic})")
    genres, tables, notes = _genre_tables(runs_dir / "gan")
    if not genres:
        raise ValueError(f"{runs_dir}: no trained genre in {runs_dir / 'gan'} (train one first: vj gan train "
                         f"~/loops/NAME)")
    own = [g for g in genres if g in built]
    shared = mosaic or (max(built, key=lambda n: built[n].stat().st_mtime) if built else None)
    if mosaic is None and len(built) > 1 and len(own) < len(genres):
        notes.append(f"mosaic {shared}: the newest of {len(built)} (--mosaic NAME picks another)")
    for name, lines in zip(genres, tables):
        if name in own or shared:
            lines.append(f'mosaic = "mosaic/{name if name in own else shared}"')
    if len(genres) > MAX_KEYED:
        notes.append(f"keys 1-{MAX_KEYED}: the first {MAX_KEYED} genres; the other {len(genres) - MAX_KEYED} "
                     f"switch by OSC, MIDI or the web")
    n = len(genres)
    header = (f"# Made by `vj scene` on {time.strftime('%Y-%m-%d %H:%M')} from {runs_dir}: {n} genre{'s' * (n != 1)}.\n"
              f"# Each genre plays its live generator (gan), its learning clips, walks and loops (clips)"
              f"{' and a mosaic' if built else ''}.\n"
              f"# The look (layers, effects, audio routes, keys) is {look.name}'s. Edit freely, then check it:\n"
              f"#   vj presets check {scene_path}\n"
              f"# Relative paths start at `root` (relative to this file).\n"
              f"root = {_toml_str(os.path.relpath(runs_dir.resolve(), scene_path.resolve().parent))}\n\n")
    return MadeScene(_in_look(look, header, tables, genres, bool(built)), genres, shared if len(own) < n else None,
                     own, notes)
