"""Properties of configuration reading under mutated input (issue 13, item 10).

The property: :func:`sdr_isac.config.from_dict` / :func:`~sdr_isac.config.loads` raise
:class:`ConfigError`, or return a config whose every number is finite, of its field's type and
inside the field's documented :class:`~sdr_isac.config.Bounds`, and whose values are what the
input says.  The oracle is ``problems`` / ``mismatches`` / ``endpoint_ok`` of
``scripts/fuzz_config.py`` (the same as the fuzz suite's), written without the library's checks;
``type_ok`` below says, independently of ``config._coerce``, which values a field's annotation
admits: a value it does not admit must always be refused.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sdr_isac import config
from sdr_isac.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import fuzz_config as fz  # noqa: E402

BASES = fz.bases()
TEXTS = {name: (REPO / "hw_configs" / name).read_text(encoding="utf-8") for name in BASES if name.endswith(".toml")}
PLACES = [(name, path) for name, data in sorted(BASES.items()) for path in fz.key_paths(data)]
EDGES = list(fz.EDGE_VALUES) + [2**64, -(2**64), 10**400, 1e-40, 0.5, "nan", "inf", "\x00", "tcp://*:0"]
PROPS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(data: Any) -> str:
    """"refused" (ConfigError), "valid" (accepted and right), else what is wrong."""
    try:
        cfg = config.from_dict(config.Config, data)
    except ConfigError as err:
        assert err.detail and err.key is not None or "configuration" in err.detail, f"unclear error: {err}"
        return "refused"
    wrong = fz.problems(cfg) + fz.mismatches(data, cfg)
    return "; ".join(wrong) if wrong else "valid"


# ---- which values an annotation admits (independent of config._coerce) ---------------------------
def type_ok(value: Any, tp: Any) -> bool:
    """Whether ``value`` (from TOML or JSON) has the type ``tp`` allows: the range is another matter."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(type_ok(value, option) for option in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    if origin is tuple:
        return isinstance(value, list) and all(type_ok(v, typing.get_args(tp)[0]) for v in value)
    if tp is bool or tp is str:
        return type(value) is tp and "\x00" not in str(value)
    if isinstance(value, bool):
        return False
    if tp is int:
        return isinstance(value, int)
    if tp is float:
        return isinstance(value, int) and abs(value) < 2**1024 or isinstance(value, float) and math.isfinite(value)
    raise AssertionError(f"type_ok does not know {tp!r}")


def sites(cls: type = config.Config, prefix: tuple[Any, ...] = ()) -> list[tuple[type, str, tuple[Any, ...]]]:
    """(class, field, path in a Config dict) of every field of every section reachable from Config."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, path = hints[f.name], prefix + (f.name,)
        out.append((cls, f.name, path))
        inner = [t for t in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(t)]
        if inner and not (cls is config.NodeConfig and f.name == "frame"):      # a node's frame: as [frame]
            many = typing.get_origin(tp) is tuple
            out += sites(typing.cast(type, inner[0]), path + ((0,) if many else ()))
    return out


def radio_sites() -> tuple[list[tuple[type, str, tuple[Any, ...]]], dict[str, str]]:
    """The fields of each radio kind's own section (beyond RadioConfig's), and the kind each belongs to."""
    common = {f.name for f in dataclasses.fields(config.RadioConfig)}
    out, kind_of = [], {}
    for kind in config.radio_kinds():
        section = config.radio_section(kind)
        for f in dataclasses.fields(section):
            if f.name not in common:
                out.append((section, f.name, ("radio", f.name)))
                kind_of[f.name] = kind
    return out, kind_of


RADIO_SITES, RADIO_KIND_OF = radio_sites()
SITES = sites() + RADIO_SITES


def place(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A minimal Config dict with ``value`` at ``path`` (lists of tables get one table; a radio kind's own
    field gets that kind, and a replay radio its required ``uri``)."""
    data: dict[str, Any] = {"scene": {"nodes": [{}]}} if path[0] == "scene" else {}
    if path[0] == "radio" and path[-1] in RADIO_KIND_OF:
        kind = RADIO_KIND_OF[path[-1]]
        data["radio"] = {"kind": kind, **({"uri": "rec.sigmf-meta"} if kind == "replay" else {})}
    node: Any = data
    for key, nxt in zip(path[:-1], path[1:]):
        if isinstance(key, int):
            node = node[key]
            continue
        default: Any = [{}] if isinstance(nxt, int) else {}
        if key not in node or not isinstance(node[key], type(default)):
            node[key] = default
        node = node[key]
    node[path[-1]] = copy.deepcopy(value)
    return data


# ---- the oracle can fail ----------------------------------------------------------------------------
def test_the_oracle_sees_wrong_configs():
    cfg = config.default()
    bad = dataclasses.replace(cfg.frame)
    object.__setattr__(bad, "carrier_hz", math.nan)
    object.__setattr__(cfg, "frame", bad)
    assert any("carrier_hz" in p and "not finite" in p for p in fz.problems(cfg))
    object.__setattr__(bad, "carrier_hz", 1e300)
    assert any("carrier_hz" in p and "outside" in p for p in fz.problems(cfg))
    object.__setattr__(bad, "num_rb", True)
    assert any("num_rb" in p for p in fz.problems(cfg))
    stream = config.StreamConfig()
    object.__setattr__(stream, "host_endpoint", "tcp://nonsense")
    assert fz.problems(stream) == ["host_endpoint = 'tcp://nonsense': accepted, but not a ZeroMQ endpoint"]
    good = config.default()
    assert fz.mismatches({"frame": {"num_rb": 52}}, good) == ["frame.num_rb: given 52, got 51"]
    assert fz.mismatches({"frame": {"data": {"enabled": 1}}}, good)             # 1 is not true
    assert fz.mismatches({"frame": {"numerolgy": 1}}, good)                      # an unknown key accepted
    assert fz.mismatches({"frame": {"fft_size": 0, "num_rb": 51}}, good) == []   # 0: the smallest that fits
    assert not fz.endpoint_ok("tcp://nonsense") and fz.endpoint_ok("tcp://[::1]:5555")


def test_every_radio_kind_has_its_own_fields_swept():
    assert set(RADIO_KIND_OF) >= {"loop", "pace", "gain_mode", "tx_attenuation_db", "remove_leakage", "tx_gain_db",
                                  "clock_source", "time_source", "rx_antenna", "tx_antenna"}
    assert outcome(place(("radio", "tx_attenuation_db"), 5.0)) == "valid"           # placed under kind = "pluto"
    assert outcome(place(("radio", "loop"), True)) == "valid"                        # kind = "replay", with a uri


def test_every_numeric_field_declares_and_documents_its_range():
    classes = {cls for cls, _, _ in SITES} | {config.Config}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        bounds = config.field_bounds(cls)
        for f in dataclasses.fields(cls):
            numeric = fz._scalar_kind(hints[f.name]) is not None
            assert numeric == (f.name in bounds), f"{cls.__name__}.{f.name}: numeric {numeric}, bounds {bounds}"
            assert f.name in (cls.__doc__ or ""), f"{cls.__name__}.{f.name} is not in the docstring"
        default = cls(uri="rec.sigmf-meta") if cls is config.ReplayRadioConfig else cls()    # a replay needs a uri
        assert fz.problems(default) == [], cls.__name__


# ---- every field of every section, every edge value (a sweep: no edge left to chance) --------------
def test_every_field_with_every_edge_value_is_refused_or_right():
    hints = {cls: typing.get_type_hints(cls) for cls, _, _ in SITES}
    failures, refused = [], 0
    for cls, name, path in SITES:
        for value in EDGES:
            result = outcome(place(path, value))
            refused += result == "refused"
            if result not in ("refused", "valid"):
                failures.append(f"{'.'.join(map(str, path))} = {value!r}: {result}")
            elif result == "valid" and not type_ok(value, hints[cls][name]):
                failures.append(f"{'.'.join(map(str, path))} = {value!r}: accepted, but its type does not fit "
                                f"{hints[cls][name]}")
    assert not failures, "\n".join(failures[:20])
    assert refused >= len(SITES) * len(EDGES) * 0.6


@pytest.mark.parametrize("value", [[], {}, [1, 2], "x", 3, 2.5, True, None])
def test_every_table_of_the_wrong_type_is_refused_with_its_path(value):
    for cls, name, path in SITES:
        tp = typing.get_type_hints(cls)[name]
        if not any(dataclasses.is_dataclass(t) for t in (tp, *typing.get_args(tp))):
            continue
        if type_ok(value, tp):                      # [] for a list of tables, None for [frame.prs]: fine
            continue
        key = ".".join(str(p) for p in path).replace(".0", "[0]")         # scene.nodes[0].rx_array
        with pytest.raises(ConfigError) as info:
            config.from_dict(config.Config, place(path, value))
        assert info.value.key is not None and info.value.key.startswith(key), (info.value.key, key)


@pytest.mark.parametrize("data", [[], None, "frame", 3, {1: 2}, {None: {}}, {"frame": {1: 2}},
                                  {"scene": {"nodes": [{"position_m": {"x": 1}}]}}, {"frame": {"prs": []}}])
def test_documents_that_are_not_tables_are_refused(data):
    with pytest.raises(ConfigError):
        config.from_dict(config.Config, data)


# ---- random mutations of every shipped config -----------------------------------------------------
VALUES = (st.sampled_from(EDGES) | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6)
          | st.lists(st.integers(-3, 3) | st.floats(-1e9, 1e9), max_size=4) | st.booleans()
          | st.dictionaries(st.sampled_from(["id", "x", "comb_size", "position_m"]), st.integers(-3, 3), max_size=2))
OPS = st.lists(st.tuples(st.sampled_from(["set", "set", "set", "delete", "unknown", "nest"]),
                         st.integers(0, 10_000), VALUES), min_size=1, max_size=3)


def apply(data: dict[str, Any], ops: list[tuple[str, int, Any]]) -> dict[str, Any]:
    """Set, delete, misspell or nest at places of ``data`` (an index modulo the places there are now)."""
    data = copy.deepcopy(data)
    for op, index, value in ops:
        places = fz.key_paths(data)
        if not places:
            break
        path = places[index % len(places)]
        if op == "set":
            fz.set_at(data, path, copy.deepcopy(value))
        elif op == "delete":
            fz.delete_at(data, path)
        elif op == "nest":
            fz.set_at(data, path, [fz.get_at(data, path)])
        elif isinstance(parent := fz.get_at(data, path[:-1]), dict):
            parent[f"{path[-1]}s"] = copy.deepcopy(value)
    return data


def _index(name: str, path: tuple[Any, ...]) -> int:
    return fz.key_paths(BASES[name]).index(path)


@PROPS
@given(name=st.sampled_from(sorted(BASES)), ops=OPS)
@example(name="sim_passive.toml", ops=[("nest", _index("sim_passive.toml", ("stream", "heartbeat_s")), None),
                                       ("unknown", _index("sim_passive.toml", ("scene", "seed")), math.nan)])
@example(name="sim_multi_bs.toml",                          # the issue's finite extremes
         ops=[("set", _index("sim_multi_bs.toml", ("scene", "nodes", 1, "clock_offset_s")), 1e300)])
@example(name="sim_multi_bs.toml", ops=[("set", _index("sim_multi_bs.toml", ("scene", "nodes", 0, "position_m", 2)),
                                         1e300)])
@example(name="pluto.toml", ops=[("set", _index("pluto.toml", ("radio", "sample_rate_hz")), 0.5)])
@example(name="pluto.toml", ops=[("set", _index("pluto.toml", ("radio", "rx_gain_db")), True)])
@example(name="sim_single_bs.toml", ops=[("set", _index("sim_single_bs.toml", ("scene", "targets", 0)), [1, 2])])
def test_mutated_hw_configs_are_refused_or_right(name, ops):
    data = apply(BASES[name], ops)
    assert outcome(data) in ("refused", "valid")


@pytest.mark.parametrize("name, path, value, pattern", [
    ("sim_passive.toml", ("stream", "host_endpoint"), "tcp://nonsense",
     r"stream\.host_endpoint = 'tcp://nonsense': allowed a ZeroMQ endpoint tcp://HOST:PORT"),
    ("sim_multi_bs.toml", ("scene", "nodes", 1, "clock_offset_s"), 1e300,
     r"scene\.nodes\[1\]\.clock_offset_s = 1e\+300: allowed -0\.001 \.\.\. 0\.001 s"),
    ("sim_multi_bs.toml", ("scene", "nodes", 0, "position_m"), [0.0, 1e300, 0.0],
     r"scene\.nodes\[0\]\.position_m\[1\] = 1e\+300: allowed -1e\+07 \.\.\. 1e\+07 m"),
    ("pluto.toml", ("radio", "sample_rate_hz"), 0.5, r"radio\.sample_rate_hz = 0\.5: allowed 0 or 1000 \.\.\. 1e\+10 Hz"),
])
def test_the_issue_reproducers_are_refused_by_load(tmp_path, name, path, value, pattern):
    data = copy.deepcopy(BASES[name])
    fz.set_at(data, path, value)
    file = tmp_path / name
    file.write_text(fz.to_toml(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=pattern) as info:
        config.load(file)
    assert str(file) in str(info.value)


# ---- endpoints ----------------------------------------------------------------------------------
OCTET = st.integers(0, 300).map(str) | st.sampled_from(["01", "", "-1", "a"])
HOSTS = (st.sampled_from(fz.ENDPOINT_HOSTS)
         | st.lists(OCTET, min_size=3, max_size=5).map(".".join)
         | st.from_regex(r"[a-z0-9-]{0,5}(\.[a-z0-9-]{1,5}){0,2}", fullmatch=True)
         | st.from_regex(r"\[[0-9a-f:]{0,12}(%[a-z0-9]{0,3})?\]", fullmatch=True)
         | st.text(max_size=6))
PORTS = st.integers(-5, 70000).map(str) | st.sampled_from(fz.ENDPOINT_PORTS) | st.text(max_size=4)
ENDPOINTS = (st.builds(lambda s, h, p: f"{s}://{h}:{p}", st.sampled_from(["tcp"] * 8 + ["udp", "TCP", "tcp:"]),
                       HOSTS, PORTS)
             | st.builds(lambda s, t: f"{s}://{t}", st.sampled_from(["ipc", "inproc"]),
                         st.text(max_size=4) | st.sampled_from(["", "p" * 107, "p" * 108, "/tmp/x.sock"]))
             | st.text(max_size=12))


@PROPS
@given(endpoint=ENDPOINTS, key=st.sampled_from(["host_endpoint", "publish_endpoint"]))
@example(endpoint="tcp://nonsense", key="host_endpoint")
@example(endpoint="tcp://127.0.0.1:0", key="host_endpoint")
@example(endpoint="tcp://127.0.0.1:65536", key="publish_endpoint")
@example(endpoint="tcp://::1:5555", key="host_endpoint")
@example(endpoint="tcp://[::1]:5555", key="host_endpoint")
@example(endpoint="tcp://*:5555", key="host_endpoint")
@example(endpoint="tcp://node-1.lan:1", key="host_endpoint")
@example(endpoint="ipc://", key="host_endpoint")
@example(endpoint="inproc://", key="publish_endpoint")
@example(endpoint="inproc://host", key="publish_endpoint")
def test_endpoints_follow_the_zeromq_grammar(endpoint, key):
    try:
        stream = config.from_dict(config.StreamConfig, {key: endpoint}, prefix="stream")
    except ConfigError as err:
        assert err.key == f"stream.{key}" and ("allowed" in str(err) or "must be" in str(err))
        assert not fz.endpoint_ok(endpoint), f"{endpoint!r} refused: {err}"
        return
    assert fz.endpoint_ok(endpoint), f"{endpoint!r} accepted"
    assert getattr(stream, key) == endpoint


# ---- whole documents and broken text --------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(["frame", "scene", "nodes", "radio", "num_rb", "x"]), inner,
                                      max_size=3), max_leaves=12)


@PROPS
@given(data=st.dictionaries(st.sampled_from(["frame", "radio", "scene", "sensing", "stream", "fusion", "name"]),
                            JSON, max_size=3) | JSON)
def test_random_documents_are_refused_or_right(data):
    assert outcome(data) in ("refused", "valid")


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(TEXTS)), at=st.floats(0, 1), cut=st.integers(0, 3),
       insert=st.text(max_size=4) | st.sampled_from(["[", "]", "\"", "=", "\n[frame]\n", "\x00", "\ufeff", "\r",
                                                     "nan", "1e999", "[[scene.nodes]]\n"]))
def test_broken_toml_text_is_refused_or_right(name, at, cut, insert):
    text = TEXTS[name]
    i = int(at * len(text))
    broken = text[:i] + insert + text[i + cut:]
    try:
        expected = tomllib.loads(broken)
    except tomllib.TOMLDecodeError:
        expected = None
    try:
        cfg = config.loads(broken, source="fuzzed.toml")
    except ConfigError as err:
        assert str(err).startswith("fuzzed.toml: ")
        return
    assert expected is not None and fz.problems(cfg) == [] and fz.mismatches(expected, cfg) == []


@pytest.mark.parametrize("text", ["a = " + "[" * 5000 + "]" * 5000, "a = " + "{b = " * 3000 + "1" + "}" * 3000,
                                  "a." * 100_000 + "b = 1", "[" + "a." * 50 + "b]\n", "x = 1\n" * 300_000])
def test_pathological_toml_is_refused_quickly(text):
    with pytest.raises(ConfigError, match=r"<string>: "):
        config.loads(text)
