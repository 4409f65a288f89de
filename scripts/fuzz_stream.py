#!/usr/bin/env python3
"""Fuzz the streaming: wire decodes, a live host process under malformed traffic, killed nodes, CURVE.

Categories (full / ``--quick`` counts):

- ``wire decode`` (250,000 / 20,000): real encoded messages of every kind (capture with frame, truth and RIS
  steps, detections, estimates, rdmap, status, heartbeat, control, tracks) mutated: flipped bytes, truncated
  or padded frames, dropped / duplicated / swapped / random frames, header values replaced by edge values
  (null, NaN and Infinity tokens, 0, -1, 2**62, 2**63 - 1, 2**64, 2.5, true, "12", [], {}, ...) or deleted,
  numbers turned into strings, floats or bools, structured fields replaced by random JSON, random array
  specs (dimensions mixing 0, 1, 2**31, 2**62, 2**63 - 1, -1 and beyond; valid and invalid dtypes) with
  buffers exact, truncated, padded or empty.  ``WireFormatError`` is a clean error; an accepted message is
  valid only if the independent oracle (``tests/stream/wire_oracle.py``) finds it consistent with its
  frames (dtype, shape, bytes of every array; the header) and every ``decode_<kind>`` helper raises
  WireFormatError or returns records that match the header and that the host's consumers can use; any
  other exception is a crash.
- ``host over zmq`` (3,000 / 300): messages that ``wire.decode`` refuses, sent over a real ZeroMQ socket to
  a live ``sdr-isac host`` process (``--out``) while an ``sdr-isac node`` process streams 60 frames to it.
  Each message counted in the host's ``rejected`` is a clean error; the shortfall is silent_wrong.  The run
  must end with the host exiting 0 without a traceback, both threads alive at the end, its outputs written,
  and every frame of the node received and processed, none lost; else every message of the run counts as
  crash (the host died or printed a traceback), hang (it did not finish) or silent_wrong (frames missing).
- ``node restart`` (3 / 1): a paced node process SIGKILLed and restarted, at an in-process host: the host
  must report it absent (stats and a ``status`` message) and, when the new process is heard, the outage
  with start, end, frames missed, restarted, published within 1 s of that first message.
- ``curve`` (2 rounds / 1 round of 8 variants): with CURVE on at the host, nodes with a key not allowed,
  the wrong host key, or no CURVE, and subscribers with no CURVE, a node's key (not a subscriber's), or the
  wrong host key, must be refused (clean_error): counted at the host, the node exiting 2 with a message
  naming the cause and no traceback, the subscriber raising ConfigError; an authorised node and an
  authorised subscriber must work (accepted_valid).

Usage::

    .venv/bin/python scripts/fuzz_stream.py --quick [--seed N]
"""

from __future__ import annotations

import copy
import json
import math
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

import _fuzzkit  # noqa: E402

from sdr_isac import config  # noqa: E402
from sdr_isac.errors import ConfigError, WireFormatError  # noqa: E402
from sdr_isac.stream import FusionHost, wire  # noqa: E402
from sdr_isac.stream.demo import free_ports  # noqa: E402
from tests.stream import wire_oracle as oracle  # noqa: E402

SDR_ISAC = ROOT / ".venv" / "bin" / "sdr-isac"
COUNTS = {"wire decode": (250_000, 20_000), "host over zmq": (3_000, 300), "node restart": (3, 1), "curve": (2, 1)}
NODE_FRAMES = 60

#: Values that replace a header value: every JSON type, its edges, the wrong types.
EDGE_VALUES: list[Any] = [None, True, False, 0, 1, -1, 2.5, -2.5, 1e-300, 2**31, 2**62, 2**63 - 1, 2**63,
                          -(2**63), -(2**63) - 1, 2**64, 10**30, 1e308, math.inf, -math.inf, math.nan, "", "x", "12",
                          "2.5", "NaN", "capture", "monostatic", "target", [], [1, 2], [None], [1.0, 2.0, 3.0],
                          ["a"], {}, {"a": 1}, {"paths": 1}, [[[]]], [{"kind": 5}], {"kind": "target"}]
EDGE_DIMS = [0, 0, 1, 2, 3, 7, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, -1, -(2**63)]
DTYPES = list(oracle.LAYOUT) + ["float16", "object", "O", "<c8", ">f8", "", None, 3, True, [], {}]
KEYS = ["paths", "targets", "kind", "target", "position_m", "velocity_mps", "range_m", "snr_per_re_db", "id",
        "scan_index", "scan_size", "steer_deg", "start_s", "end_s", "frames_missed", "frames_missed_from", "dtype",
        "shape", "geometry", "nodes", "single_m", "final", "captured", "truth", "ris", "radio", "replay", "x"]
STRUCTURED = {"capture": [("metadata",), ("metadata", "truth"), ("metadata", "ris"), ("frame",)],
              "detections": [("truth",), ("detections",), ("truth", "paths"), ("truth", "targets")],
              "rdmap": [("truth",), ("node",), ("sensing",), ("stats",), ("detections",)],
              "estimates": [("estimates",)], "status-back": [("outage",)], "status-absent": [("outage",)],
              "heartbeat": [("stats",)]}

HOST_CONFIG = """
name = "fuzz-stream"
[frame]
numerology = 3
num_rb = 10
fft_size = 128
carrier_hz = 24e9
num_slots = 1
[radio]
node_id = "a"
[scene]
seed = 1
[[scene.nodes]]
id = "a"
[[scene.targets]]
id = "t"
position_m = [50.0, 5.0, 0.0]
velocity_mps = [-10.0, 0.0, 0.0]
snr_per_re_db = 5
[stream]
host_endpoint = "tcp://127.0.0.1:{port}"
publish_endpoint = "tcp://127.0.0.1:{publish}"
heartbeat_s = 0.1
absent_after_heartbeats = {absent}
frame_rate_hz = {rate}
{extra}
"""


# ---- the mutations ----------------------------------------------------------------------------
def key_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indices) of a JSON value, depth first."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((*prefix, k))
            out.extend(key_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value[:6]):
            out.append((*prefix, i))
            out.extend(key_paths(v, (*prefix, i)))
    return out


def garbage(rnd: random.Random, depth: int = 0) -> Any:
    """Random JSON: edge values, text, numbers, nested lists and objects (known keys half of the time)."""
    r = rnd.random()
    if depth >= 3 or r < 0.45:
        return copy.deepcopy(rnd.choice(EDGE_VALUES)) if rnd.random() < 0.7 else rnd.choice(
            [rnd.uniform(-1e6, 1e6), rnd.randrange(-(2**70), 2**70), "".join(rnd.choice("ab_ .\x00é") for _ in
                                                                             range(rnd.randrange(6)))])
    if r < 0.7:
        return [garbage(rnd, depth + 1) for _ in range(rnd.randrange(5))]
    return {(rnd.choice(KEYS) if rnd.random() < 0.6 else f"k{rnd.randrange(9)}"): garbage(rnd, depth + 1)
            for _ in range(rnd.randrange(6))}


def retype(value: Any, rnd: random.Random) -> Any:
    """The same value as another JSON type: "12" for 12, 2.5 or 2.0 for 2, true for 1, [x] for x, ..."""
    if isinstance(value, bool):
        return rnd.choice([int(value), str(value).lower(), None])
    if isinstance(value, int):
        return rnd.choice([str(value), value + 0.5, float(value), bool(value % 2), [value], -value - 1])
    if isinstance(value, float):
        return rnd.choice([str(value), int(value) if math.isfinite(value) else 0, [value], -value, value * 1e300])
    if isinstance(value, str):
        return rnd.choice([len(value), [value], {"v": value}, value + "x", value[:-1], value.upper()])
    if isinstance(value, list):
        return rnd.choice([value[:-1], value + value[-1:], {"0": value}, value[::-1]]) if value else {}
    if isinstance(value, dict):
        return list(value.values())
    return rnd.choice(EDGE_VALUES)


def _fix_topic(frames: list[bytes], header: Any, rnd: random.Random) -> None:
    if rnd.random() < 0.85 and isinstance(header, dict) and isinstance(header.get("kind"), str) \
            and isinstance(header.get("node_id"), str):
        frames[0] = f"{header['kind']}/{header['node_id']}".encode("utf-8", "surrogatepass")


def _array_specs(rnd: random.Random) -> tuple[list[Any], list[bytes]]:
    specs, buffers = [], []
    for _ in range(rnd.randrange(0, 4)):
        dtype = rnd.choice(DTYPES)
        shape: Any = [rnd.choice(EDGE_DIMS) if rnd.random() < 0.5 else rnd.randrange(0, 9)
                      for _ in range(rnd.randrange(0, 5))]
        if rnd.random() < 0.1:
            shape = rnd.choice([None, "4,16", 3, {}, [2.5], [True, 2], ["3"], [1] * 9])
        specs.append({"dtype": dtype, "shape": shape})
        size = rnd.randrange(0, 48)
        if isinstance(dtype, str) and dtype in oracle.LAYOUT and isinstance(shape, list) \
                and all(type(n) is int and n >= 0 for n in shape) and math.prod(shape) <= 2048:
            import numpy as np

            size = math.prod(shape) * np.dtype(oracle.LAYOUT[dtype]).itemsize
            size = rnd.choice([size, size, size, max(size - rnd.randrange(1, 9), 0), size + rnd.randrange(1, 9), 0])
        buffers.append(bytes(rnd.randrange(2 if dtype == "bool" else 256) for _ in range(size)))
    return specs, buffers


def mutate(samples: dict[str, list[bytes]], rnd: random.Random) -> tuple[str, list[bytes]]:
    """One mutated message: (description, frames)."""
    name = rnd.choice(sorted(samples))
    frames = list(samples[name])
    op = rnd.choice(["flip", "truncate", "pad", "frames", "edge", "edge", "edge", "retype", "retype", "garbage",
                     "garbage", "shape", "random"])
    note = f"{name}: {op}"
    if op in ("flip", "truncate", "pad"):
        i = rnd.randrange(len(frames))
        data = bytearray(frames[i])
        if op == "flip" and data:
            for _ in range(rnd.randrange(1, 4)):
                data[rnd.randrange(len(data))] ^= rnd.randrange(1, 256)
        elif op == "truncate":
            del data[rnd.randrange(len(data) + 1):]
        else:
            data += bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 17)))
        frames[i] = bytes(data)
        return f"{note} frame {i}", frames
    if op == "frames":
        how = rnd.choice(["drop", "duplicate", "swap", "add"])
        i = rnd.randrange(len(frames))
        if how == "drop":
            del frames[i]
        elif how == "duplicate":
            frames.insert(i, frames[i])
        elif how == "swap":
            j = rnd.randrange(len(frames))
            frames[i], frames[j] = frames[j], frames[i]
        else:
            frames.append(bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 32))))
        return f"{note} {how} {i}", frames
    if op == "random":
        frames = [bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 40))) for _ in range(rnd.randrange(0, 6))]
        if frames and rnd.random() < 0.5:
            frames[0] = rnd.choice([b"capture/a", b"detections/a", b"status/a"])
        return note, frames
    header = json.loads(frames[1])
    if op == "shape":
        header["arrays"], frames[2:] = _array_specs(rnd)
        note += f" {str(header['arrays'])[:200]}"
    elif op == "garbage" and name in STRUCTURED:
        path = rnd.choice(STRUCTURED[name])
        parent = header
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = garbage(rnd)
        note += f" {path} = {str(parent[path[-1]])[:200]}"
    else:
        for _ in range(rnd.choice([1, 1, 1, 2, 3])):
            paths = key_paths(header)
            if not paths:
                break
            path = rnd.choice(paths)
            parent = header
            for step in path[:-1]:
                parent = parent[step]
            if op == "edge" and isinstance(path[-1], str) and rnd.random() < 0.15:
                del parent[path[-1]]
                note += f" del {path}"
                continue
            value = copy.deepcopy(rnd.choice(EDGE_VALUES)) if op == "edge" else retype(parent[path[-1]], rnd)
            if op == "garbage":
                value = garbage(rnd)
            parent[path[-1]] = value
            note += f" {path} = {str(value)[:80]}"
    frames[1] = json.dumps(header).encode()          # NaN / Infinity tokens and huge integers as they come
    _fix_topic(frames, header, rnd)
    return note, frames


def classify(tally: _fuzzkit.Tally, note: str, frames: list[bytes]) -> str:
    """Decode ``frames`` and count the outcome (see the module docstring)."""
    try:
        msg = wire.decode(frames)
    except WireFormatError:
        return tally.add("clean_error")
    except Exception:                                         # noqa: BLE001  counting crashes is the point
        return tally.add("crash", f"{note}\n{traceback.format_exc()}")
    try:
        found = oracle.problems(msg, frames) + oracle.helper_problems(msg)
    except Exception:                                         # noqa: BLE001
        return tally.add("crash", f"{note} (in the oracle)\n{traceback.format_exc()}")
    if any(" raised " in p for p in found):
        return tally.add("crash", f"{note}\n{found}")
    if found:
        return tally.add("silent_wrong", f"{note}\n{found}")
    return tally.add("accepted_valid")


def fuzz_wire(count: int, seed: int) -> _fuzzkit.Tally:
    tally = _fuzzkit.Tally("wire decode")
    rnd = random.Random(seed)
    samples = oracle.sample_messages()
    for name, frames in samples.items():                     # the unmutated ones must be accepted and valid
        classify(tally, f"{name} (unmutated)", frames)
    while tally.total < count:
        note, frames = mutate(samples, rnd)
        classify(tally, note, frames)
    return tally


# ---- a live host process ----------------------------------------------------------------------------
def _config(folder: Path, *, rate: float, absent: int = 20, extra: str = "") -> tuple[Path, config.Config]:
    port, publish = free_ports(2)
    path = folder / f"stream{port}.toml"
    path.write_text(HOST_CONFIG.format(port=port, publish=publish, rate=rate, absent=absent, extra=extra))
    return path, config.load(path)


def _push(endpoint: str, messages: list[list[bytes]]) -> None:
    import zmq

    push = zmq.Context.instance().socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 5000)
    push.setsockopt(zmq.SNDTIMEO, 20000)
    try:
        push.connect(endpoint)
        for frames in messages:
            push.send_multipart(frames)
    finally:
        push.close()


def _node(path: Path, node_id: str, frames: int) -> subprocess.Popen[str]:
    return subprocess.Popen([str(SDR_ISAC), "node", "--config", str(path), "--node-id", node_id, "--frames",
                             str(frames)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def _first_message(endpoint: str, topics: tuple[str, ...], timeout_s: float,
                   stream: config.StreamConfig | None = None) -> wire.Message | None:
    from sdr_isac.stream.subscribe import subscribe

    messages = subscribe(endpoint, topics, timeout_s=timeout_s, stream=stream)
    try:
        return next(messages, None)
    finally:
        messages.close()


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def fuzz_host(count: int, seed: int, work: Path) -> _fuzzkit.Tally:
    tally = _fuzzkit.Tally("host over zmq")
    rnd = random.Random(seed + 1)
    samples = oracle.sample_messages()
    messages: list[tuple[str, list[bytes]]] = []
    while len(messages) < count:                              # only what decode refuses: each must be rejected
        note, frames = mutate(samples, rnd)
        if len(frames) >= 1:
            try:
                wire.decode(frames)
            except WireFormatError:
                messages.append((note, frames))
            except Exception:                                 # noqa: BLE001  the wire decode category finds these
                pass
    path, cfg = _config(work, rate=20.0)
    out = work / "host-out"
    host = subprocess.Popen([str(SDR_ISAC), "host", "--config", str(path), "--nodes", "a", "--timeout", "120",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    node = None
    first = "host did not start"
    try:
        first = host.stdout.readline() if host.stdout else ""
        if not first.startswith("host:"):
            raise RuntimeError(first)
        node = _node(path, "a", NODE_FRAMES)
        if _first_message(cfg.stream.publish_endpoint, ("detections/a",), 60) is None:
            raise RuntimeError("the node's first detections never came out of the host")
        _push(cfg.stream.host_endpoint, [frames for _, frames in messages])
        node_out, node_err = node.communicate(timeout=120)
        stdout, stderr = host.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        for _ in messages:
            tally.add("hang", "the host or node did not finish within 120 s")
        return tally
    except Exception:                                         # noqa: BLE001
        for _ in messages:
            tally.add("crash", f"{first}\n{traceback.format_exc()}")
        return tally
    finally:
        for proc in (host, node):
            if proc is not None:
                _stop(proc)
    text = stdout + stderr
    if host.returncode != 0 or "Traceback (most recent call last)" in text:
        for _ in messages:
            tally.add("crash", f"host rc {host.returncode}\n{text[-1500:]}")
        return tally
    try:
        stats = json.loads((out / "stream_stats.json").read_text())
        node_stats = stats["nodes"]["a"]
        outputs = (out / "a" / "summary.json").exists()
    except (OSError, ValueError, KeyError) as err:
        for _ in messages:
            tally.add("silent_wrong", f"host outputs missing: {err}")
        return tally
    frames_ok = node_stats["received"] == node_stats["processed"] == NODE_FRAMES and node_stats["lost"] == 0
    if not (frames_ok and outputs and stats["receiver_alive"] and stats["worker_alive"] and node.returncode == 0):
        for _ in messages:
            tally.add("silent_wrong", f"node a {node_stats}, outputs {outputs}, threads {stats['receiver_alive']} "
                                      f"{stats['worker_alive']}, node rc {node.returncode} {node_err[-300:]}")
        return tally
    rejected = int(stats["rejected"])
    for i, (note, _) in enumerate(messages):
        tally.add("clean_error" if i < rejected else "silent_wrong",
                  f"the host counted {rejected} of {len(messages)} malformed messages as rejected "
                  f"(errors: {stats['errors'][-3:]}); e.g. {note}")
    return tally


# ---- node restart ------------------------------------------------------------------------------------
def fuzz_restart(count: int, work: Path) -> _fuzzkit.Tally:
    from sdr_isac.stream.subscribe import subscribe

    tally = _fuzzkit.Tally("node restart")
    path, cfg = _config(work, rate=50.0, absent=5)
    statuses: list[tuple[wire.Message, float]] = []
    stop = threading.Event()

    def listen() -> None:
        for msg in subscribe(cfg.stream.publish_endpoint, ("status/a",), stop=stop):
            statuses.append((msg, time.time()))

    with FusionHost(cfg) as host:
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        node = _node(path, "a", 0)
        try:
            for cycle in range(count):                        # the restarted node is the one killed next
                outcome, example, node = _restart_cycle(host, path, node, statuses, cycle)
                tally.add(outcome, example)
        finally:
            stop.set()
            _stop(node)
            listener.join(5)
    return tally


def _wait(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _restart_cycle(host: FusionHost, path: Path, node: subprocess.Popen[str],
                   statuses: list[tuple[wire.Message, float]], cycle: int
                   ) -> tuple[str, str, subprocess.Popen[str]]:
    """Kill the streaming ``node`` and start another: (outcome, example, the node streaming now)."""
    outcome, example, restarted = _kill_and_restart(host, path, node, statuses, cycle)
    return outcome, example, restarted if restarted is not None else node


def _kill_and_restart(host: FusionHost, path: Path, node: subprocess.Popen[str],
                      statuses: list[tuple[wire.Message, float]], cycle: int
                      ) -> tuple[str, str, subprocess.Popen[str] | None]:
    def node_stats() -> dict[str, Any]:
        return host.stats()["nodes"].get("a", {})

    before_outages = node_stats().get("outages_total", 0)
    if not _wait(lambda: node_stats().get("state") == "present" and node_stats().get("received", 0) >= 5, 60):
        return "hang", f"cycle {cycle}: the node never streamed ({node_stats()})", None
    node.send_signal(signal.SIGKILL)
    node.wait(10)
    killed_s = time.time()
    if not _wait(lambda: node_stats().get("state") == "absent", 10):
        return "silent_wrong", f"cycle {cycle}: not reported absent 10 s after SIGKILL ({node_stats()})", None
    gone = node_stats()
    if not (gone["absent_since_s"] is not None and gone["absent_since_s"] <= killed_s
            and gone["outages_total"] == before_outages + 1 and gone["outages"][-1]["end_s"] is None):
        return "silent_wrong", f"cycle {cycle}: absent without a consistent outage: {gone}", None
    seen = len(statuses)
    restarted = _node(path, "a", 0)
    if not _wait(lambda: node_stats().get("state") == "present", 60):
        return "hang", f"cycle {cycle}: the restarted node was never picked up ({node_stats()})", restarted
    back = node_stats()
    outage = back["outages"][-1]
    ok = (outage["start_s"] == gone["absent_since_s"] and outage["end_s"] is not None
          and outage["end_s"] >= outage["start_s"] and type(outage["frames_missed"]) is int
          and outage["frames_missed"] >= 0 and outage["restarted"] and outage["frames_missed_from"] == "rate")
    if not ok:
        return "silent_wrong", f"cycle {cycle}: the ended outage is wrong: {outage}", restarted
    _wait(lambda: any(wire.decode_status(m).state == "present" for m, _ in statuses[seen:]), 2)
    published = [(wire.decode_status(m), t) for m, t in statuses[seen:]]
    present = [(s, t) for s, t in published if s.state == "present" and s.outage is not None]
    first = present[0] if present else None
    if first is None or first[1] - outage["end_s"] > 1.0 or first[0].outage is None \
            or first[0].outage.end_s != outage["end_s"]:
        return "silent_wrong", f"cycle {cycle}: the outage was not published within 1 s: {published}", restarted
    return "accepted_valid", "", restarted


# ---- CURVE -----------------------------------------------------------------------------------------
def fuzz_curve(rounds: int, work: Path) -> _fuzzkit.Tally:
    from sdr_isac.stream.security import create_keys

    tally = _fuzzkit.Tally("curve")
    keys = work / "keys"
    host_pub, host_sec = create_keys(keys, "host")
    good_pub, good_sec = create_keys(keys, "good")
    _, bad_sec = create_keys(keys, "bad")
    view_pub, view_sec = create_keys(keys, "viewer")
    other_pub, _ = create_keys(keys, "other")
    curve = (f'curve_server_public = "{host_pub}"\ncurve_allowed = ["{good_pub}"]\n'
             f'curve_subscribers_allowed = ["{view_pub}"]\n')
    _, host_cfg = _config(work, rate=20.0, extra=curve + f'curve_server_secret = "{host_sec}"\n')

    def client(name: str, secret: Path | None, server: Path = host_pub) -> Path:
        text = HOST_CONFIG.format(port=host_cfg.stream.host_endpoint.rsplit(":", 1)[1],
                                  publish=host_cfg.stream.publish_endpoint.rsplit(":", 1)[1], rate=20.0, absent=20,
                                  extra="" if secret is None else
                                  f'curve_server_public = "{server}"\ncurve_client_secret = "{secret}"\n')
        out = work / f"{name}.toml"
        out.write_text(text)
        return out

    nodes = {"node: key not allowed": client("bad", bad_sec),
             "node: wrong host key": client("wrong", good_sec, other_pub),
             "node: no CURVE": client("plain", None)}
    subscribers = {"subscriber: no CURVE": None,
                   "subscriber: a node's key": config.load(client("good", good_sec)).stream,
                   "subscriber: wrong host key": config.load(nodes["node: wrong host key"]).stream}
    with FusionHost(host_cfg) as host:
        for _ in range(rounds):
            for name, node_path in nodes.items():
                before = host.stats()
                tally.add(*_refused_node(host, name, node_path, before))
            for name, stream in subscribers.items():
                before = host.stats()
                tally.add(*_refused_subscriber(host, name, stream, before))
            tally.add(*_authorised(host, client("good", good_sec), config.load(client("viewer", view_sec)).stream))
    return tally


def _refusals(stats: dict[str, Any]) -> int:
    return int(stats["refused"]["total"])


def _refused_node(host: FusionHost, name: str, path: Path, before: dict[str, Any]) -> tuple[str, str]:
    proc = _node(path, "a", 3)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        _stop(proc)
        return "hang", f"{name}: the node did not exit within 60 s"
    after = host.stats()
    if "Traceback (most recent call last)" in err or proc.returncode < 0:
        return "crash", f"{name}: rc {proc.returncode}\n{err[-1500:]}"
    received = after["nodes"].get("a", {}).get("received", 0) - before["nodes"].get("a", {}).get("received", 0)
    if proc.returncode != 2 or "refused this node" not in err or received or _refusals(after) <= _refusals(before):
        return "silent_wrong", (f"{name}: rc {proc.returncode}, {received} frames got through, refusals "
                                f"{_refusals(before)} -> {_refusals(after)}: {err[-500:]}")
    return "clean_error", ""


def _refused_subscriber(host: FusionHost, name: str, stream: config.StreamConfig | None,
                        before: dict[str, Any]) -> tuple[str, str]:
    from sdr_isac.stream.subscribe import subscribe

    try:
        for msg in subscribe(host.cfg.stream.publish_endpoint, ("",), stream=stream, timeout_s=10,
                             auth_timeout_s=1.0):
            return "silent_wrong", f"{name}: a refused subscriber received {msg.topic!r}"
    except ConfigError as err:
        if "refused this subscriber" not in str(err):
            return "silent_wrong", f"{name}: an error that does not say why: {err}"
    except Exception:                                         # noqa: BLE001
        return "crash", f"{name}\n{traceback.format_exc()}"
    else:
        return "silent_wrong", f"{name}: neither refused with a reason nor received anything within 10 s"
    if _refusals(host.stats()) <= _refusals(before):
        return "silent_wrong", f"{name}: the host did not count the refusal"
    return "clean_error", ""


def _authorised(host: FusionHost, node_path: Path, viewer: config.StreamConfig) -> tuple[str, str]:
    got: list[wire.Message] = []

    def listen() -> None:
        msg = _first_message(host.cfg.stream.publish_endpoint, ("detections/a",), 60, viewer)
        if msg is not None:
            got.append(msg)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.5)
    proc = _node(node_path, "a", 3)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        _stop(proc)
        return "hang", "authorised node and subscriber: the node did not finish within 60 s"
    listener.join(30)
    if proc.returncode != 0 or not got:
        return "silent_wrong", (f"authorised node and subscriber: rc {proc.returncode}, {len(got)} received: "
                                f"{err[-500:]}")
    return "accepted_valid", ""


# ---- entry points --------------------------------------------------------------------------------
def run(quick: bool, seed: int = 0) -> list[_fuzzkit.Tally]:
    """Every category of this part, with the full or the ``quick`` counts."""
    n = {name: counts[1 if quick else 0] for name, counts in COUNTS.items()}
    work = Path(tempfile.mkdtemp(prefix="fuzz_stream_"))
    try:
        return [fuzz_wire(n["wire decode"], seed), fuzz_host(n["host over zmq"], seed, work),
                fuzz_restart(n["node restart"], work), fuzz_curve(n["curve"], work)]
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":           # the same table and exit status as scripts/fuzz.py --only stream
    import fuzz

    sys.exit(fuzz.main(["--only", "stream", *sys.argv[1:]]))
