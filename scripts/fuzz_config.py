#!/usr/bin/env python3
"""Fuzz the configuration reader: mutated ``hw_configs/*.toml`` through ``config.load``.

Category ``config``: every shipped configuration (and the built-in ones) is parsed, mutated
(a key set to an edge value, deleted, misspelt, added, nested in the wrong type; several at
once; endpoints drawn from their grammar), written back as TOML to a temporary file and read
with :func:`sdr_isac.config.load`, so TOML parsing is part of it.  Some inputs are broken
TOML text instead (truncated, a character deleted or inserted, a line repeated, bytes that
are not UTF-8).

An input ends as (see ``_fuzzkit.py``):

- ``clean_error``: a :class:`~sdr_isac.errors.ConfigError` whose message names the file;
- ``accepted_valid``: a config whose every number is finite, of its field's type and inside
  the field's documented :class:`~sdr_isac.config.Bounds`, whose values equal what the TOML
  says (``tomllib`` read independently), and whose endpoints follow the ZeroMQ grammar
  (checked here with ``socket.inet_pton``, not with the library's code);
- ``silent_wrong``: accepted but any of that fails;
- ``crash``: any other exception, or a ConfigError that does not name the file;
- ``hang``: one input took longer than ``TIME_LIMIT_S``.

Usage::

    .venv/bin/python scripts/fuzz_config.py --quick        # 300 inputs, seconds
    .venv/bin/python scripts/fuzz_config.py --seed 3       # 1400 inputs
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
import re
import signal
import socket
import sys
import tempfile
import tomllib
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _fuzzkit  # noqa: E402

from sdr_isac import config  # noqa: E402
from sdr_isac.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COUNTS = {"quick": 300, "full": 1400}
TIME_LIMIT_S = 10.0
#: The first EDGE_ROUNDS * len(EDGE_VALUES) inputs put each edge value at a random scalar (then random).
EDGE_ROUNDS = 4

#: Values every property / fuzz run puts into fields: the edges of every type class.
EDGE_VALUES: tuple[Any, ...] = (
    None, math.inf, -math.inf, math.nan, 0, -1, 1, 1e300, -1e300, 2**62, 2**63 - 1, -(2**63), 2.5, -0.0,
    1e-300, 5e-324, True, False, "12", "", "x", [], {}, [1, 2], [[1]], [None], {"a": 1}, [{}], [1.5, "a"],
    "tcp://nonsense",
)

#: Endpoint pieces: valid and broken hosts, ports and schemes.
ENDPOINT_HOSTS = ("127.0.0.1", "0.0.0.0", "*", "localhost", "node-1.lan", "[::1]", "[fe80::1%eth0]",
                  "::1", "[::g]", "256.1.1.1", "1.2.3", "01.2.3.4", "", "a b", "-bad", "bad-", "x" * 64,
                  "a." * 127 + "b", "[::1", "*.*", "host_name", "1.2.3.4.5", "ex%ample", "123")
ENDPOINT_PORTS = ("5555", "1", "65535", "0", "65536", "-1", "", "*", "05555", "99999", "5555 ", "+80", "abc",
                  "١٢٣")


# ---- the oracle -------------------------------------------------------------------------------
def _scalar_kind(tp: Any) -> type | None:
    if tp in (int, float):
        return typing.cast(type, tp)
    for arg in typing.get_args(tp):
        kind = _scalar_kind(arg)
        if kind is not None:
            return kind
    return None


def _flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, (tuple, list)):
        for item in value:
            yield from _flatten(item)
    elif value is not None:
        yield value


def _inside(x: float, b: config.Bounds) -> bool:
    if b.or_zero and x == 0:
        return True
    low_ok = x > b.low if b.low_open else x >= b.low
    high_ok = x < b.high if b.high_open else x <= b.high
    return low_ok and high_ok


def problems(cfg: Any, path: str = "") -> list[str]:
    """Every number of the config ``cfg`` (recursively) that breaks its field's declared type or range.

    Also reports numeric fields that declare no :class:`~sdr_isac.config.Bounds`, and
    endpoints that do not follow the ZeroMQ grammar (:func:`endpoint_ok`).
    """
    out: list[str] = []
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value, key = getattr(cfg, f.name), path + f.name
        if dataclasses.is_dataclass(value):
            out += problems(value, key + ".")
            continue
        if isinstance(value, tuple) and any(dataclasses.is_dataclass(v) for v in value):
            for i, v in enumerate(value):
                out += problems(v, f"{key}[{i}].")
            continue
        if f.name.endswith("_endpoint") and not endpoint_ok(value):
            out.append(f"{key} = {value!r}: accepted, but not a ZeroMQ endpoint")
        kind = _scalar_kind(hints[f.name])
        if kind is None:
            continue
        bounds = f.metadata.get("bounds")
        if bounds is None:
            out.append(f"{key}: a numeric field without declared bounds")
            continue
        for x in _flatten(value):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or (kind is int and not isinstance(x, int)):
                out.append(f"{key} = {value!r}: holds {x!r}, not {kind.__name__}")
            elif isinstance(x, float) and not math.isfinite(x):
                out.append(f"{key} = {value!r}: not finite")
            elif not _inside(x, bounds):
                out.append(f"{key} = {value!r}: outside {bounds}")
    return out


#: Fields whose given value the config replaces by a derived one: (class name, key) -> given values.
_RESOLVED = {("FrameConfig", "fft_size"): (0,), ("FrameConfig", "cyclic_prefix"): ("",)}


def _same(given: Any, got: Any) -> bool:
    if given is None:
        return got is None
    if isinstance(given, list):
        return isinstance(got, tuple) and len(got) == len(given) and all(_same(a, b) for a, b in zip(given, got))
    if isinstance(given, bool) or isinstance(got, bool):
        return type(given) is type(got) and given == got
    if isinstance(given, (int, float)):
        return isinstance(got, (int, float)) and given == got
    return type(given) is type(got) and given == got


def mismatches(data: dict[str, Any], cfg: Any, path: str = "") -> list[str]:
    """Keys of ``data`` (what the TOML says) whose value differs from the config built from it."""
    out: list[str] = []
    for key, given in data.items():
        k = path + str(key)
        if not isinstance(key, str) or not hasattr(cfg, key):
            out.append(f"{k}: given, but the config has no such field (an unknown key was accepted)")
            continue
        got = getattr(cfg, key)
        if isinstance(given, dict):
            out += mismatches(given, got, k + ".") if dataclasses.is_dataclass(got) else [f"{k}: table -> {got!r}"]
        elif isinstance(given, list) and any(isinstance(g, dict) for g in given):
            if not isinstance(got, tuple) or len(got) != len(given):
                out.append(f"{k}: {len(given)} tables -> {got!r}")
                continue
            for i, (g, o) in enumerate(zip(given, got)):
                ok = isinstance(g, dict) and dataclasses.is_dataclass(o)
                out += mismatches(g, o, f"{k}[{i}].") if ok else [f"{k}[{i}]: {g!r} -> {o!r}"]
        elif given in _RESOLVED.get((type(cfg).__name__, key), ()) and type(given) is type(got):
            continue
        elif not _same(given, got):
            out.append(f"{k}: given {given!r}, got {got!r}")
    return out


_IPV6_SCOPE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def endpoint_ok(endpoint: Any) -> bool:
    """The ZeroMQ endpoint grammar of issue 13, written independently of ``sdr_isac.config``."""
    if not isinstance(endpoint, str) or any(ord(c) < 32 or ord(c) == 127 for c in endpoint):
        return False
    if endpoint.startswith("ipc://"):
        return 1 <= len(endpoint[6:].encode("utf-8", "surrogatepass")) <= 107
    if endpoint.startswith("inproc://"):
        return len(endpoint) > len("inproc://")
    m = re.fullmatch(r"tcp://(.*):([0-9]+)", endpoint, flags=re.ASCII)
    if m is None:
        return False
    host, port = m.groups()
    if port != str(int(port)) or not 1 <= int(port) <= 65535:
        return False
    if host == "*":
        return True
    if host.startswith("[") and host.endswith("]"):
        address, _, scope = host[1:-1].partition("%")
        if "%" in host and not _IPV6_SCOPE.fullmatch(scope):
            return False
        try:
            socket.inet_pton(socket.AF_INET6, address)
        except (OSError, ValueError):
            return False
        return True
    try:
        socket.inet_pton(socket.AF_INET, host)
        return True
    except (OSError, ValueError):
        pass
    labels = host.split(".")
    return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels) \
        and not labels[-1].isdigit()


def valid(data: dict[str, Any] | None, cfg: Any) -> bool:
    """An accepted config is right: in range everywhere and equal to what the input says."""
    if not isinstance(cfg, config.Config):
        return False
    if problems(cfg):
        return False
    return data is None or not mismatches(data, cfg)


# ---- TOML writing -----------------------------------------------------------------------------
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(k: Any) -> str:
    text = str(k)
    return text if _BARE_KEY.fullmatch(text) else _string(text)


def _string(s: str) -> str:
    return json.dumps(s).replace("\x7f", "\\u007f")      # JSON escapes are TOML escapes; DEL is not allowed raw


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def to_toml(data: dict[str, Any]) -> str:
    """TOML text for ``data``: top-level tables as ``[section]`` headers, deeper ones inline; None is left out."""
    head, sections = [], []
    for k, v in data.items():
        if v is None:
            continue
        if isinstance(v, dict):
            body = [f"{_key(kk)} = {_value(vv)}" for kk, vv in v.items() if vv is not None]
            sections.append(f"[{_key(k)}]\n" + "".join(line + "\n" for line in body))
        else:
            head.append(f"{_key(k)} = {_value(v)}\n")
    return "".join(head) + "\n".join(sections)


# ---- mutations --------------------------------------------------------------------------------
def bases() -> dict[str, dict[str, Any]]:
    """Every shipped configuration as a dict: ``hw_configs/*.toml`` and the built-in ones."""
    out = {p.name: tomllib.loads(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "hw_configs").glob("*.toml"))}
    for name in ("default", "demo"):
        out[f"builtin:{name}"] = tomllib.loads((ROOT / "sdr_isac" / f"{name}.toml").read_text(encoding="utf-8"))
    return out


Path_ = tuple[Any, ...]


def key_paths(data: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every place in ``data``: a key of a table or an index of a list, depth first."""
    out: list[Path_] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out += key_paths(v, prefix + (k,))
    return out


def get_at(data: Any, path: Path_) -> Any:
    for k in path:
        data = data[k]
    return data


def set_at(data: Any, path: Path_, value: Any) -> None:
    get_at(data, path[:-1])[path[-1]] = value


def delete_at(data: Any, path: Path_) -> None:
    del get_at(data, path[:-1])[path[-1]]


def near_miss(rng: random.Random, name: str) -> str:
    """A misspelling of ``name``: a character dropped, doubled or changed."""
    if not name:
        return "x"
    i = rng.randrange(len(name))
    return rng.choice([name[:i] + name[i + 1:], name[:i] + name[i] + name[i:],
                       name[:i] + rng.choice("aeiou_") + name[i + 1:], name + "s"]) or "y"


def random_value(rng: random.Random, old: Any) -> Any:
    """An edge value, or one derived from the value it replaces (scaled, negated, off by one, wrong type)."""
    r = rng.random()
    if r < 0.55:
        return copy.deepcopy(rng.choice(EDGE_VALUES))
    if isinstance(old, (int, float)) and not isinstance(old, bool):
        scaled = old * 10 ** rng.randint(-12, 300) if isinstance(old, float) else old * 10 ** rng.randint(1, 20)
        return rng.choice([scaled, -old, old + 1, old - 1, float(old) + 0.5, str(old), [old], {"v": old}, bool(old)])
    if isinstance(old, str):
        return rng.choice([old + "x", old.upper(), "", old * 50, " " + old, old + "\u00e9", 1, [old]])
    if isinstance(old, list):
        return rng.choice([old[:-1], old + old[-1:] if old else [0], [old], list(reversed(old)), {"0": old}])
    if isinstance(old, dict):
        return rng.choice([[old], [old, old], "table", 3, {}])
    return rng.uniform(-1e9, 1e9)


def random_endpoint(rng: random.Random) -> str:
    """A ZeroMQ endpoint assembled from valid and broken pieces."""
    r = rng.random()
    if r < 0.7:
        scheme = rng.choice(["tcp"] * 6 + ["udp", "TCP", "tcp:", ""])
        return f"{scheme}://{rng.choice(ENDPOINT_HOSTS)}:{rng.choice(ENDPOINT_PORTS)}"
    if r < 0.8:
        return rng.choice(["ipc://", "ipc:///tmp/sdr.sock", "ipc://" + "p" * rng.choice([100, 107, 108, 200]),
                           "ipc://@abstract", "ipc:///tmp/a\nb"])
    if r < 0.9:
        return rng.choice(["inproc://", "inproc://host", "inproc://a b"])
    return rng.choice(["tcp://127.0.0.1", "tcp://:5555", "127.0.0.1:5555", "tcp://127.0.0.1:5555/", "tcp//x:1",
                       "tcp://127.0.0.1:5555:5556", "tcp://[::1]5555", "tcp://127.0.0.1:\u0665"])


def set_edge(rng: random.Random, data: dict[str, Any], value: Any) -> str:
    """Put the edge ``value`` at a random scalar (a number, string or bool) of ``data``; return the description."""
    leaves = [p for p in key_paths(data) if not isinstance(get_at(data, p), (dict, list))]
    path = rng.choice(leaves)
    set_at(data, path, copy.deepcopy(value))
    return f"{'.'.join(str(p) for p in path)} = {value!r}"


def mutate(rng: random.Random, data: dict[str, Any]) -> str:
    """Apply one random mutation to ``data`` in place; return its description."""
    places = key_paths(data)
    op = rng.choice(["set"] * 5 + ["delete", "unknown", "nest", "endpoint", "section"])
    if op == "endpoint" or not places:
        key = rng.choice(["host_endpoint", "publish_endpoint"])
        stream = data.setdefault("stream", {})
        if not isinstance(stream, dict):
            data["stream"] = stream = {}
        stream[key] = value = random_endpoint(rng)
        return f"stream.{key} = {value!r}"
    path = rng.choice(places)
    old = get_at(data, path)
    where = ".".join(str(p) for p in path)
    if op == "set":
        value = random_value(rng, old)
        set_at(data, path, value)
        return f"{where} = {value!r}"
    if op == "delete":
        delete_at(data, path)
        return f"delete {where}"
    if op == "unknown":
        target = get_at(data, path[:-1])
        if isinstance(target, dict):
            name = near_miss(rng, str(path[-1])) if rng.random() < 0.7 else rng.choice(["extra", "Frame", "ß", "1"])
            target[name] = copy.deepcopy(rng.choice(EDGE_VALUES[:12]))
            return f"add {'.'.join(str(p) for p in path[:-1] + (name,))}"
        op = "nest"
    if op == "nest":
        nested: Any = rng.choice([[old], {"nested": old}, [[old]], {"a": {"b": old}}])
        set_at(data, path, nested)
        return f"nest {where} = {nested!r}"
    name = rng.choice(["frame", "radio", "scene", "sensing", "stream", "fusion", "frame.prs", "scene.nodes"])
    head, _, tail = name.partition(".")
    section: Any = copy.deepcopy(rng.choice([[{}], 3, "x", [], {"bogus": 1}, [{"id": "bs0"}, {"id": "bs0"}]]))
    if tail and isinstance(data.get(head), dict):
        data[head][tail] = section
    else:
        data[head] = section
    return f"section {name} = {section!r}"


def break_text(rng: random.Random, text: str) -> bytes:
    """TOML text broken at the syntax or encoding level."""
    op = rng.randrange(9)
    i = rng.randrange(len(text) + 1)
    if op == 0:
        return text[:i].encode()                                          # truncated
    if op == 1:
        return (text[:i] + text[i + 1:]).encode()                         # one character less
    if op == 2:
        return (text[:i] + rng.choice('[]{}"\'=,#\n\\.') + text[i:]).encode()  # one character more
    if op == 3:
        lines = text.splitlines(keepends=True)
        j = rng.randrange(len(lines))
        return "".join(lines[:j + 1] + lines[j:]).encode()                # a repeated line: duplicate keys
    if op == 4:
        return text.encode()[:i] + rng.choice([b"\xff", b"\xc3", b"\x80\x80", b"\xed\xa0\x80"]) + text.encode()[i:]
    if op == 5:
        return (text[:i] + rng.choice(["\x00", "\x01", "\x7f", "\ufeff", "\r"]) + text[i:]).encode()
    if op == 6:
        return ("\ufeff" + text).encode()
    if op == 7:
        lines = text.splitlines(keepends=True)
        rng.shuffle(lines)
        return "".join(lines).encode()                                    # keys fall under other headers
    return (text + rng.choice(["\n[frame]\n", "\nname = 1\n", "\n[[scene.nodes]]\nid = 'bs0'\n", "\n= 3\n"])).encode()


# ---- the run ----------------------------------------------------------------------------------
class _Hang(BaseException):
    """Raised by the alarm when one input runs past ``TIME_LIMIT_S`` (not an Exception: tallies skip it)."""


def _alarm(signum: int, frame: types.FrameType | None) -> None:
    raise _Hang


def _load_checked(path: Path) -> config.Config:
    """``config.load(path)``; a ConfigError that does not name the file is re-raised as a crash."""
    try:
        return config.load(path)
    except ConfigError as err:
        if str(path) not in str(err) or not err.detail:
            raise RuntimeError(f"unclear ConfigError (the file is not named): {err}") from err
        raise


def run(quick: bool, seed: int = 0) -> list[_fuzzkit.Tally]:
    """Fuzz ``config.load`` with ``COUNTS['quick' or 'full']`` mutated configurations."""
    rng = random.Random(seed)
    originals = bases()
    texts = {name: to_toml(data) for name, data in originals.items()}
    tally = _fuzzkit.Tally("config")
    total = COUNTS["quick" if quick else "full"]
    old_handler = signal.signal(signal.SIGALRM, _alarm)
    try:
        with tempfile.TemporaryDirectory(prefix="fuzz_config_") as tmp:
            path = Path(tmp) / "fuzzed.toml"
            for n in range(total):
                name = rng.choice(sorted(originals))
                edge = n < EDGE_ROUNDS * len(EDGE_VALUES)          # every edge value, several times in every run
                if not edge and rng.random() < 0.15:
                    raw = break_text(rng, texts[name])
                    label = f"#{n} {name}, broken text"
                else:
                    data = copy.deepcopy(originals[name])
                    steps = [set_edge(rng, data, EDGE_VALUES[n % len(EDGE_VALUES)])] if edge else []
                    steps += [mutate(rng, data) for _ in range(rng.choice([1, 1, 1, 2, 3]) - len(steps))]
                    raw = to_toml(data).encode()
                    label = f"#{n} {name}: " + "; ".join(steps)
                path.write_bytes(raw)
                try:
                    expected: dict[str, Any] | None = tomllib.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
                    expected = None
                label += f"\n--- {path.name} ---\n{raw.decode('utf-8', 'replace')[:1500]}"
                signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
                def right(cfg: Any, expected: dict[str, Any] | None = expected) -> bool:
                    return expected is not None and valid(expected, cfg)

                try:
                    tally.call(lambda: _load_checked(path), valid=right, label=label)
                except _Hang:
                    tally.add("hang", f"{label}\nran past {TIME_LIMIT_S} s")
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old_handler)
    return [tally]


if __name__ == "__main__":           # the same table and exit status as scripts/fuzz.py --only config
    import fuzz

    sys.exit(fuzz.main(["--only", "config", *sys.argv[1:]]))
