"""The first hour with the command line: help that teaches, checks that check, output that reads in a file."""
from __future__ import annotations

import argparse
import logging
import importlib.util
import re
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import ROOT, make_generator_ckpt, run_vj, solid_video
from vj.core.media import count_frames


def _commands(parser: argparse.ArgumentParser, name: str = "vj"):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield name, parser
    for sub in subs:
        for child_name, child in sub.choices.items():
            yield from _commands(child, f"{name} {child_name}")


def test_every_command_has_examples_and_every_argument_says_what_it_does():
    from vj.cli import build_parser

    commands = dict(_commands(build_parser()))
    assert {"vj gan train", "vj gan score", "vj mosaic query", "vj live", "vj osc", "vj audio analyze",
            "vj demo"} <= set(commands)
    for name, parser in commands.items():
        examples = [line for line in (parser.epilog or "").splitlines() if line.strip().startswith("vj ")]
        assert len(examples) >= 2, f"{name} --help shows {len(examples)} examples"
        assert parser.description, f"{name} has no description"
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name}: {'/'.join(action.option_strings) or action.dest} has no help"
            shown_default = action.default not in (None, False, [], argparse.SUPPRESS) and action.option_strings
            if shown_default and not isinstance(action.default, bool):
                assert "default" in action.help, f"{name}: {action.option_strings[0]} does not say its default"


def test_presets_check_reads_the_kind_from_the_content_and_checks_every_action(tmp_path):
    (tmp_path / "my-cues.toml").write_text('[[cue]]\nat = 1.0\ngenre = "red"\n')  # outside cues/
    (tmp_path / "quick.toml").write_text('epochs = 3\nsize = 64\n')               # a genre outside genres/
    scene = tmp_path / "show.toml"
    scene.write_text(textwrap.dedent("""
        [genre]
        initial = "red"
        [genres.red]
        clips = ["gone/red.mp4"]
        [[layers]]
        source = "clip"
        [keys]
        "2" = "genre phto"
    """))
    proc = run_vj("presets", "check", str(tmp_path / "my-cues.toml"), str(tmp_path / "quick.toml"), str(scene))
    out = proc.stdout
    assert proc.returncode == 1 and "2 ok, 1 with errors" in out, out + proc.stderr
    assert "ok    " in out and "my-cues.toml" in out and "quick.toml" in out
    assert "phto" in out and "red" in out  # the unknown genre named, with the known ones
    proc = run_vj("presets", "check", str(tmp_path))  # a show's folder: every TOML in it
    assert proc.returncode == 1 and "2 ok, 1 with errors" in proc.stdout
    scene.write_text(scene.read_text().replace("genre phto", "genre red"))
    proc = run_vj("presets", "check", str(scene))
    assert proc.returncode == 0
    assert "gone/red.mp4" in proc.stdout and "black until the files are there" in proc.stdout  # named, advised


def test_osc_list_names_the_scenes_genres_and_cues(show):
    _, scene, cues = show
    out = run_vj("osc", "--list", "--scene", str(scene), "--cues", str(cues), check=True).stdout
    genre_line = next(line for line in out.splitlines() if "/vj/genre " in line or "/vj/genre\t" in line
                      or line.split()[:1] == ["/vj/genre"])
    assert "red" in genre_line and "blue" in genre_line
    assert "invert" in next(line for line in out.splitlines() if line.split()[:1] == ["/vj/cue"])


def test_render_without_seconds_ends_after_the_cue_list_and_log_makes_its_folder(show, tmp_path):
    _, scene, cues = show
    log = tmp_path / "new" / "deeper" / "show.log"
    run_vj("render", str(scene), "--cues", str(cues), "--out", str(tmp_path / "out" / "a.mp4"), "--log", str(log),
           check=True)
    # the last cue is at beat 4 (2 s at 120 BPM), then the 0.5 s fade and a second: 3.5 s at 10 fps
    assert count_frames(tmp_path / "out" / "a.mp4") == 35
    assert "cue invert at 2.00s" in log.read_text()
    proc = run_vj("render", str(scene), "--out", str(tmp_path / "b.mp4"))
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and last.startswith("vj: error: give --seconds") and "Traceback" not in proc.stderr


def test_a_render_ends_by_naming_the_parts_that_showed_black(show, tmp_path):
    _, scene, _ = show
    clean = run_vj("render", str(scene), "--seconds", "1", "--out", str(tmp_path / "a.mp4"), check=True)
    assert "failed while rendering" not in clean.stderr
    broken = scene.parent / "broken.toml"
    broken.write_text(scene.read_text().replace('generator = "g_red.pt"', 'generator = "gone.pt"')
                      .replace("opacity = 0.0", "opacity = 0.5"))
    proc = run_vj("render", str(broken), "--seconds", "1", "--out", str(tmp_path / "b.mp4"), check=True)
    last = proc.stderr.strip().splitlines()[-1]
    assert "b.mp4: 1 part failed while rendering" in last and "gan (red)" in last
    assert "gone.pt: no such file" in proc.stderr  # the reason, one line, further up


def test_a_render_whose_file_fails_stops_there_with_the_reason(show, tmp_path, monkeypatch):
    """A full disk mid-render: the render ends with ffmpeg's reason, not 'wrote' over a dropped output."""
    import pytest

    from vj.cli.show import render_show
    from vj.core.media import MediaError, VideoWriter

    real, frames = VideoWriter.write, []

    def write(self, frame):
        if self.frames == 5:
            raise MediaError(f"{self.path}: ffmpeg stopped: No space left on device")
        frames.append(1)
        real(self, frame)

    monkeypatch.setattr(VideoWriter, "write", write)
    with pytest.raises(MediaError, match="No space left on device"):
        render_show(show[1], tmp_path / "x.mp4", seconds=3, progress=False)
    assert len(frames) == 5  # it stopped at the failure, not after rendering 25 more frames for nobody


def test_an_unnamed_cue_is_labelled_by_its_index_and_first_action(tmp_path):
    from vj.control.cues import load_cues

    path = tmp_path / "c.toml"
    path.write_text('[[cue]]\nat = 1\nname = "drop"\ngenre = "red"\n[[cue]]\nat = 2\ngenre = "blue"\n'
                    '[[cue]]\nat = 3\nset = { "master.fader" = 0.5 }\n')
    assert [c.label for c in load_cues(path, 120)] == ["drop", "#1: genre blue", "#2: master.fader 0.5"]


def test_a_deadline_run_shows_the_time_left_not_a_huge_epoch_count():
    from gan.config import TrainConfig
    from gan.train import Trainer

    trainer = Trainer.__new__(Trainer)  # the label alone: no data, no networks
    trainer.cfg = TrainConfig(epochs=0, hours=2.5)
    label = trainer._epoch_label(4, time.time() + 2 * 3600 + 600)
    assert label.startswith("epoch 4 (until ") and "2h" in label and "m left)" in label
    trainer.cfg = TrainConfig(epochs=25)
    assert trainer._epoch_label(4, None) == "epoch 4/25"


def test_progress_in_a_log_file_is_plain_lines_and_a_bar_only_on_a_terminal(caplog):
    from vj.core.progress import Progress

    caplog.set_level(logging.INFO, logger="vj")
    p = Progress(100, "frames", unit="frame", every=0.0)  # under pytest stderr is not a terminal
    for _ in range(3):
        p.update(1, fps="30.0")
    p.line("epoch 1/2")
    p.close()
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(",")[0] for line in lines[:3]] == [f"frames: {n}/100 frames ({n}%)" for n in (1, 2, 3)]
    assert all("\r" not in line and "fps 30.0" in line for line in lines[:3]) and lines[3] == "epoch 1/2"


def test_every_long_command_can_turn_its_bar_off():
    from vj.cli import build_parser

    commands = dict(_commands(build_parser()))
    for name in ("vj gan train", "vj gan clip", "vj gan walk", "vj mosaic build", "vj render"):
        options = {s for a in commands[name]._actions for s in a.option_strings}
        assert "--no-progress" in options, f"{name} has no --no-progress"


def test_resuming_a_run_that_does_not_exist_says_so_and_names_the_runs_there(tmp_path):
    (tmp_path / "gan" / "plasma").mkdir(parents=True)  # where vj gan train puts it
    (tmp_path / "gan" / "plasma" / "config.toml").write_text('genre = "plasma"\n')
    proc = run_vj("gan", "train", "--genre", "plasma2", "--resume", "--runs", str(tmp_path))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "no run to resume" in lines[0] and "runs there: plasma" in lines[0] and "Traceback" not in proc.stderr


def test_every_example_in_the_readme_and_in_every_help_parses():
    """A renamed flag leaves no stale example behind: each `vj ...` line of the README's code blocks and of
    every --help's examples is read by the real parser (parsed, not run)."""
    import argparse
    import contextlib
    import io
    import re
    import shlex

    from vj.cli import build_parser

    def helps(parser):
        yield parser.epilog or ""
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from helps(sub)

    readme = "\n".join(re.findall(r"```(?:sh|bash)?\n(.*?)```", (ROOT / "README.md").read_text(), re.S))
    examples = []
    for line in (readme + "\n" + "\n".join(helps(build_parser()))).splitlines():
        m = re.search(r"(?:^\s*|&& |\.venv/bin/)vj (.*)", line.split(" # ")[0].split("  #")[0])
        if m and not line.lstrip().startswith("#"):
            examples.append(re.split(r"\s(?:\d?>|\||&&|;)", m.group(1))[0].strip())  # the shell's part: not ours
    assert len(examples) > 60
    wrong = []
    for example in dict.fromkeys(examples):
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said), contextlib.redirect_stdout(io.StringIO()):
                build_parser().parse_args(shlex.split(example))
        except SystemExit as exc:
            if exc.code:
                wrong.append(f"vj {example}: {said.getvalue().strip().splitlines()[-1]}")
    assert wrong == []


def test_scene_plays_the_trained_genres_of_a_runs_folder(tmp_path):
    from vj.scene import load_scene

    runs, loops = tmp_path / "my runs", tmp_path / "loops [red]"  # a space and glob brackets in the paths
    (loops / "more").mkdir(parents=True)
    solid_video(loops / "red.mp4", (220, 30, 30))
    solid_video(loops / "more" / "dark.mp4", (90, 10, 10))
    (loops / "poster.png").write_bytes(b"a still trains a genre but is no clip")
    make_generator_ckpt(runs / "gan" / "red" / "ckpt.pt", 1)
    (runs / "gan" / "red" / "config.toml").write_text(f'genre = "red"\nvideos = "{loops}"\n')
    solid_video(runs / "gan" / "blue" / "clips" / "learning.mp4", (30, 30, 220))  # clips, no generator yet
    (runs / "gan" / "started").mkdir(parents=True)  # a run that never got going
    out = tmp_path / "show" / "scene.toml"
    proc = run_vj("scene", str(runs), "--out", str(out), check=True)
    assert f"wrote {out}: 2 genres (keys 1-2: blue, red)" in proc.stdout
    assert "started: left out" in proc.stdout and "no mosaic built yet" in proc.stdout
    scene = load_scene(out)
    assert scene.missing == [] and list(scene.genres) == ["blue", "red"] and scene.genre == "blue"
    assert [c.name for c in scene.genres["red"].clips] == ["red.mp4", "dark.mp4"]  # not the still
    assert "red: no learning clip or walk yet (vj gan clip red; vj gan walk red: the scene plays them once made)" \
        in proc.stdout
    solid_video(runs / "gan" / "red" / "clips" / "learning.mp4", (200, 200, 30))  # made after the scene
    assert [c.name for c in load_scene(out).genres["red"].clips] == ["learning.mp4", "red.mp4", "dark.mp4"]
    assert scene.genres["red"].generator == runs / "gan" / "red" / "ckpt.pt" and scene.genres["blue"].generator is None
    assert [layer.source for layer in scene.layers] == ["clip", "generator"]  # no mosaic: no mosaic layer
    assert {k: v for k, v in scene.keys.items() if v.startswith("genre")} == {"1": "genre blue", "2": "genre red"}
    before = out.read_text()
    again = run_vj("scene", str(runs), "--out", str(out))
    assert again.returncode == 2 and "exists" in again.stderr and out.read_text() == before  # nothing lost
    render = run_vj("render", "--seconds", "1", "--size", "96x64", "--out", str(tmp_path / "a.mp4"),
                    check=True, cwd=tmp_path / "show")  # no scene given: the scene.toml here
    assert "failed while rendering" not in render.stderr and count_frames(tmp_path / "a.mp4") == 30
    none_here = run_vj("render", "--seconds", "1", "--out", str(tmp_path / "b.mp4"), cwd=tmp_path)
    assert none_here.returncode == 2 and "no scene.toml in" in none_here.stderr and "vj scene" in none_here.stderr


def test_scene_shows_a_genres_own_mosaic_else_the_one_named_else_the_newest(tmp_path):
    import os

    from vj.scene import scene_from_runs

    runs = tmp_path / "runs"
    for genre in ("red", "blue", "green"):
        make_generator_ckpt(runs / "gan" / genre / "ckpt.pt", 1)
    for age, name in enumerate(("red", "old", "new")):  # built: grid.csv written; "half" is not
        (runs / "mosaic" / name).mkdir(parents=True)
        (runs / "mosaic" / name / "grid.csv").write_text("row,col,source,time_s\n")
        os.utime(runs / "mosaic" / name, (1e9 + age, 1e9 + age))
    (runs / "mosaic" / "half").mkdir()

    def mosaics(**kw):
        made = scene_from_runs(runs, tmp_path / "s.toml", **kw)
        return dict(re.findall(r'\[genres\.(\w+)\]\ngan = .*\nmosaic = "mosaic/(\w+)"', made.text))

    assert mosaics() == {"blue": "new", "green": "new", "red": "red"}
    assert mosaics(mosaic="old") == {"blue": "old", "green": "old", "red": "red"}  # red's own still first
    with pytest.raises(ValueError, match=r"--mosaic half: no built mosaic .* \(built: new, old, red"):
        mosaics(mosaic="half")
    with pytest.raises(ValueError, match="no trained genre"):
        scene_from_runs(tmp_path / "empty", tmp_path / "s.toml")
    make_generator_ckpt(runs / "gan" / "v1.2" / "ckpt.pt", 1)  # a dot: one quoted key, not a nested table
    (tmp_path / "s.toml").write_text(scene_from_runs(runs, tmp_path / "s.toml").text)
    from vj.scene import load_scene

    assert list(load_scene(tmp_path / "s.toml").genres) == ["blue", "green", "red", "v1.2"]



def test_a_bench_warns_when_the_machine_is_already_busy(capsys):
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "scripts" / "bench" / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    spin = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)  # started
        common.header("a bench beside a busy loop")
    finally:
        spin.kill()
        spin.wait()
    out = capsys.readouterr().out
    assert "cores already busy before this bench started" in out, out


def test_only_torchruns_other_ranks_are_quiet_and_a_stray_rank_changes_nothing():
    from vj.cli import log_level

    assert log_level(False, {"RANK": "1", "WORLD_SIZE": "2"}) == logging.WARNING
    assert log_level(False, {"RANK": "0", "WORLD_SIZE": "2"}) == logging.INFO
    assert log_level(True, {"RANK": "1", "WORLD_SIZE": "2"}) == logging.DEBUG
    for env in ({}, {"RANK": "3"}, {"RANK": "abc", "WORLD_SIZE": "2"}, {"RANK": "1", "WORLD_SIZE": "x"},
                {"RANK": "2", "WORLD_SIZE": "2"}):
        assert log_level(False, env) == logging.INFO, env
    proc = run_vj("effects", env={"RANK": "abc", "WORLD_SIZE": "2"})  # another tool's RANK: the command runs
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
