"""Property tests with hypothesis: whatever a hostile or careless user sends or types, the answer is a value in
range or one clear error, never a crash. The OSC router (random datagrams, random values on every address,
nested bundles), the scene loader (mutated presets), the command line's numbers and the resume rules."""
from __future__ import annotations

import argparse
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from vj.core.config import ConfigError

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def demo_store():
    """The demo scene's whole parameter store (every address `vj osc --list` shows)."""
    import logging

    from vj.engine import Engine
    from vj.scene import load_scene

    logging.getLogger("vj.scene").setLevel(logging.ERROR)
    engine = Engine(load_scene(ROOT / "presets" / "scenes" / "demo.toml"), exact=True)
    yield engine.store
    engine.close()


def _message(address: bytes, tags: bytes, payload: bytes) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + b"\0" * (4 - len(b) % 4)
    return pad(address) + pad(b"," + tags) + payload


values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**63, 2**63 - 1),
                   st.text(max_size=40), st.booleans(), st.none(), st.binary(max_size=16))


@FAST
@given(st.binary(max_size=512))
def test_any_datagram_is_routed_or_dropped(data):
    from vj.control.osc import OscRouter
    from vj.params import ParamStore

    assert OscRouter(ParamStore()).handle_datagram(data) >= 0


@FAST
@given(st.sampled_from([b"/vj/tap", b"/vj/genre", b"/vj/layer/clips/opacity", b"/vj/bpm", b"/x"]),
       st.binary(max_size=8).map(lambda b: bytes(c % 128 for c in b)), st.binary(max_size=64))
def test_messages_with_any_type_tags_and_payload_never_raise(address, tags, payload):
    from vj.control.osc import OscRouter
    from vj.params import ParamStore

    OscRouter(ParamStore()).handle_datagram(_message(address, tags, payload))


@FAST
@given(st.integers(0, 600), st.integers(1, 3))
def test_nested_bundles_of_any_depth_are_bounded(depth, width):
    from hypothesis import assume

    from vj.control.osc import MAX_DEPTH, OscRouter
    from vj.params import ParamStore

    out = _message(b"/vj/tap", b"", b"")
    for _ in range(depth):
        out = b"#bundle\0" + b"\0" * 8 + b"".join(struct.pack(">i", len(out)) + out for _ in range(width))
        assume(len(out) <= 65507)  # the largest UDP datagram
    routed = OscRouter(ParamStore()).handle_datagram(out)
    assert routed == (width ** depth if depth <= MAX_DEPTH and width ** depth <= 1024 else 0)


@FAST
@given(st.data())
def test_random_values_on_every_address_stay_in_range(demo_store, data):
    from vj.control.osc import OscRouter, address_of

    router = OscRouter(demo_store)
    names = sorted(demo_store.params)
    for _ in range(5):
        name = data.draw(st.sampled_from(names))
        router.handle(address_of(name), [data.draw(values)])
    demo_store.drain()
    for name, p in demo_store.params.items():
        v = demo_store.values[name]
        assert math.isfinite(v) and p.lo <= v <= p.hi, (name, v)


# ---------------------------------------------------------------- the scene loader
def _mutations():
    leaf = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=False), st.text(max_size=12), st.booleans(),
                     st.lists(st.integers(), max_size=3), st.just({}))
    return st.lists(st.tuples(st.sampled_from(["set", "delete"]), st.integers(0, 10**6), leaf), min_size=1,
                    max_size=4)


def _mutate(tree, ops):
    for op, pick, value in ops:
        paths = []

        def walk(node, path):
            if isinstance(node, dict):
                for k, v in node.items():
                    paths.append(path + [k])
                    walk(v, path + [k])
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    paths.append(path + [i])
                    walk(v, path + [i])
        walk(tree, [])
        if not paths:
            return tree
        path = paths[pick % len(paths)]
        parent = tree
        for k in path[:-1]:
            parent = parent[k]
        if op == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return tree


@SLOW
@given(_mutations())
def test_a_mutated_scene_loads_or_is_one_clear_error(tmp_path_factory, ops):
    import logging
    import tomllib

    import tomli_w

    from vj.engine import Engine
    from vj.scene import load_scene

    logging.getLogger("vj.scene").setLevel(logging.ERROR)
    tree = tomllib.loads((ROOT / "presets" / "scenes" / "demo.toml").read_text())
    tree["root"] = str(ROOT / "presets" / "scenes")
    path = tmp_path_factory.mktemp("mutated") / "scene.toml"
    try:
        path.write_text(tomli_w.dumps(_mutate(tree, ops)))
    except (TypeError, ValueError):
        return  # not expressible as TOML
    try:
        Engine(load_scene(path), exact=True, size=(64, 36)).close()
    except (ConfigError, ValueError) as exc:
        assert "\n" not in str(exc) and str(exc)


@pytest.mark.parametrize("layer", ['source = {}', 'source = "solid"\nblend = {}',
                                   'source = "solid"\neffects = [{ type = {} }]'])
def test_a_table_where_a_name_belongs_is_one_clear_error(tmp_path, layer):
    from vj.scene import load_scene

    path = tmp_path / "scene.toml"
    path.write_text(f"[[layers]]\n{layer}\n")
    with pytest.raises(ConfigError) as err:  # found by the mutation test above: was a TypeError
        load_scene(path)
    assert "\n" not in str(err.value) and "is not" in str(err.value)


# ---------------------------------------------------------------- command-line numbers and resume rules
@FAST
@given(st.one_of(st.text(max_size=12), st.floats().map(repr), st.integers(-10**9, 10**9).map(str)))
def test_command_line_numbers_are_in_range_or_refused(text):
    from vj.core.config import arg_number

    for kind in (float, int):
        parse = arg_number(1, 240, kind)
        try:
            v = parse(text)
        except argparse.ArgumentTypeError as exc:
            assert str(exc)
        else:
            assert isinstance(v, kind) and 1 <= v <= 240 and math.isfinite(v)


@FAST
@given(st.dictionaries(st.sampled_from(["epochs", "hours", "size", "batch", "fps", "augment", "lr", "ckpt_minutes",
                                        "device", "ngf", "crop"]),
                       st.one_of(st.integers(0, 500), st.floats(0.01, 50), st.sampled_from(
                           ["color", "", "cpu", "auto", "center", "face"])), max_size=4))
def test_resume_takes_how_long_and_refuses_what_changes_the_run(flags):
    from gan.config import RESUMABLE, TrainConfig, resume_config

    run = TrainConfig(genre="g", videos="/v", size=64, batch=8, fps=8.0, epochs=10)
    try:
        new = resume_config(run, dict(flags), "runs/gan/g/config.toml")
    except ConfigError as exc:
        key = str(exc).split()[0].lstrip("-").replace("-", "_")
        assert key in flags or "command line" in str(exc)  # names the flag (or the bad value)
        return
    except ValueError:
        return  # a value the settings reject (e.g. epochs 0 without a deadline)
    for key in flags:
        if key not in RESUMABLE:
            assert getattr(new, key) == getattr(run, key)


def test_a_file_where_a_folder_belongs_is_one_line_and_leaves_no_temp_file(show, tmp_path):
    """A path through a file (a typo, a stale name): the system's refusal in the user's words, not a trace."""
    from conftest import make_generator_ckpt, run_vj

    blocker = tmp_path / "afile"
    blocker.write_text("")
    _, scene, _ = show
    make_generator_ckpt(tmp_path / "runs" / "gan" / "g" / "ckpt.pt", 0)
    cases = {
        ("render", str(scene), "--seconds", "1", "--out", str(blocker / "x.mp4")):
            f"{blocker}: a file is there where a folder is needed",
        ("gan", "export", "g", "--runs", str(tmp_path / "runs"), "--out", str(blocker / "g.pt")):
            f"{blocker / 'g.pt'}: Not a directory",
        ("mosaic", "build", str(scene.parent / "red.mp4"), "--name", "m", "--runs", str(blocker)):
            f"{blocker / 'mosaic' / 'm'}: Not a directory",
    }
    for args, said in cases.items():
        proc = run_vj(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, args
        assert lines[-1].startswith(f"vj: error: {said}"), (args, lines[-1])
    assert not list(tmp_path.glob(".*tmp*"))


def test_every_number_on_every_command_line_is_range_checked():
    """A plain ``type=float`` takes nan, inf and -1 (`vj demo --seconds 0` trained for minutes, then failed)."""
    from vj.cli import build_parser

    def plain(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from plain(sub, f"{path} {name}")
            elif action.type in (float, int) and not action.choices:
                yield f"{path} {'/'.join(action.option_strings) or action.dest}"

    assert list(plain(build_parser(), "vj")) == []
