"""Every capture sample is checked once, where it is read (issue 17, item 2).

``first_nonfinite`` is the one finiteness test (the wire's receiver, the sensing pipeline, the recorder), fuzzed
against ``np.isfinite`` at the edges: empty and large arrays, NaN and infinities anywhere, finite values whose sum
overflows, subnormals, integers and booleans.  ``wire.decode(..., consumer_checks=("capture",))`` leaves a
capture's values to its consumer and checks everything else; a running host counts a capture with a NaN sample
``rejected``, keeps it out of its recording and senses the others.

Each capture's samples are read for that check once per process: a recording host (its check, the writer's, the
sensing's) and a receive-only node sensed once per transmitter (k jobs) read them once
(``Capture.checked_once``), counted at the one place every finiteness test reads samples (``_plain_sum``); so
does a recording read back (the reader's check) and replayed (``Capture.with_fields`` keeps it).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import pickle
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sdr_isac import capture as capture_mod
from sdr_isac import config, radio, sensing
from sdr_isac.capture import Capture, first_nonfinite
from sdr_isac.errors import InputError, NonFiniteSampleError, RecordingError, SensingError, WireFormatError
from sdr_isac.fusion.engine import FusionEngine
from sdr_isac.recording import RecordingWriter, open_recording
from sdr_isac.stream import FusionHost, wire
from sdr_isac.stream.demo import free_ports
from sdr_isac.waveform import IsacFrame
from tests.reliability.test_host_reliability import _captures, _push, make_config, wait_for
from tests.stream import wire_oracle as oracle

EDGES = [np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, 1e-40, 1.0, -1.0, 3e38, -3e38, 1.7e308, -1.7e308, 65504.0]


def _oracle(arr: np.ndarray) -> tuple[int, ...] | None:
    finite = np.isfinite(arr)
    if finite.all():
        return None
    return tuple(int(i) for i in np.unravel_index(int(np.argmin(finite)), arr.shape))


@st.composite
def arrays(draw: Any) -> np.ndarray:
    dtype = draw(st.sampled_from(["float16", "float32", "float64", "complex64", "complex128", "int16", "uint8",
                                  "bool"]))
    shape = draw(st.one_of(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
                           st.sampled_from([(0, 10**6), (1, 200_003), (3, 0, 5)])))
    size = int(np.prod(shape))
    out = np.zeros(shape, dtype=dtype)
    flat = out.reshape(-1)
    if size and out.dtype.kind in "fc":
        with np.errstate(over="ignore", invalid="ignore"):
            fill = draw(st.sampled_from(EDGES[3:]))          # finite (or overflowing to inf in float16)
            flat[:] = np.asarray(fill).astype(out.dtype)
            for _ in range(draw(st.integers(0, 4))):
                i = draw(st.integers(0, size - 1))
                value = draw(st.sampled_from(EDGES))
                part = draw(st.sampled_from(["real", "imag"])) if out.dtype.kind == "c" else "real"
                if part == "real":
                    flat[i] = np.asarray(value).astype(out.real.dtype) + (flat[i].imag * 1j if out.dtype.kind == "c"
                                                                          else 0)
                else:
                    flat[i] = flat[i].real + 1j * np.asarray(value).astype(out.real.dtype)
    elif size:
        flat[:] = draw(st.integers(0, 1))
    return out


@settings(max_examples=300, deadline=None)
@given(arrays())
def test_first_nonfinite_agrees_with_isfinite(arr: np.ndarray) -> None:
    assert first_nonfinite(arr) == _oracle(arr)


def test_finite_values_whose_sum_overflows_are_finite() -> None:
    arr = np.full(1000, 3e38, dtype=np.float32)
    assert not np.isfinite(np.einsum("i->", arr))            # the quick test alone would call it bad
    assert first_nonfinite(arr) is None
    arr[-1] = -np.inf
    assert first_nonfinite(arr) == (999,)


def test_a_strided_array_is_checked_as_a_copy() -> None:
    arr = np.zeros((4, 6), dtype=np.complex64)
    arr[2, 3] = complex(0, np.nan)
    assert first_nonfinite(arr[:, ::2]) is None
    assert first_nonfinite(arr[:, 1::2]) == (2, 1)


@settings(max_examples=200, deadline=None)
@given(arrays().filter(lambda a: a.dtype.kind in "fc" and a.ndim >= 1 and a.size and a.size < 10**5))
def test_capture_check_samples_says_nonzero_and_names_the_bad_sample(arr: np.ndarray) -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        iq = arr.reshape(-1).astype(np.complex64)
    cap = Capture(iq=iq, sample_rate_hz=1e6, node_id="n1", seq=4)
    bad = _oracle(cap.iq)
    if bad is None:
        assert cap.check_samples() == bool(np.any(cap.iq != 0))
    else:
        with pytest.raises(NonFiniteSampleError, match=rf"^capture n1/4 contains NaN or infinite samples: "
                                                       rf"iq\[{bad[0]}, {bad[1]}\] = "):
            cap.check_samples()


def test_cancelling_and_tiny_samples_are_not_all_zero() -> None:
    assert Capture(iq=np.array([1 + 0j, -1 + 0j], np.complex64), sample_rate_hz=1.0).check_samples()
    assert Capture(iq=np.array([0, 1e-44j], np.complex64), sample_rate_hz=1.0).check_samples()
    assert not Capture(iq=np.zeros((2, 5), np.complex64), sample_rate_hz=1.0).check_samples()
    assert not Capture(iq=np.zeros((1, 0), np.complex64), sample_rate_hz=1.0).check_samples()
    assert issubclass(NonFiniteSampleError, SensingError) and issubclass(NonFiniteSampleError, InputError)


# ---- decode: a capture's values left to its consumer, everything else checked -------------------------------
def _bad_capture() -> Capture:
    iq = np.ones((2, 64), np.complex64)
    iq[1, 17] = complex(np.nan, 0)
    return Capture(iq=iq, sample_rate_hz=30.72e6, center_freq_hz=3.5e9, node_id="a", seq=3)


def test_decode_leaves_capture_values_to_the_consumer_that_asks() -> None:
    frames = wire.encode_capture(_bad_capture())
    with pytest.raises(WireFormatError, match=r"^arrays\[0\]\[1, 17\] = \(?nan.*allowed finite values"):
        wire.decode(frames)
    msg = wire.decode(frames, consumer_checks=("capture",))
    capture = wire.decode_capture(msg)
    with pytest.raises(WireFormatError, match=r"^arrays\[0\]\[1, 17\] = \(?nan"):
        wire.check_values(msg)
    with pytest.raises(NonFiniteSampleError, match=r"iq\[1, 17\] = \(?nan"):
        capture.check_samples()
    # sizes are still checked for that kind
    with pytest.raises(WireFormatError, match="frame 2 size"):
        wire.decode(frames[:2] + [bytes(frames[2])[:-8]], consumer_checks=("capture",))


def test_other_kinds_keep_their_value_check() -> None:
    """Only the kinds named are left to the consumer: a map's infinity is still refused by decode."""
    power = np.arange(12, dtype=np.float32).reshape(4, 3)
    frames = [bytes(f) for f in oracle.sample_messages()["rdmap"]]
    assert np.frombuffer(frames[2], np.float32).size == power.size       # the power map is the first buffer
    power[2, 1] = np.inf
    frames[2] = power.tobytes()
    with pytest.raises(WireFormatError, match=r"^arrays\[0\]\[2, 1\] = inf"):
        wire.decode(frames, consumer_checks=("capture",))


@pytest.mark.parametrize("kinds", ["capture", b"capture", None, 3, ["captures"], [None], {"capture": 1, 2: 3}])
def test_consumer_checks_must_be_a_collection_of_kinds(kinds: Any) -> None:
    with pytest.raises(InputError, match=r"consumer_checks = .*allowed a collection of message kinds"):
        wire.decode(wire.encode_capture(_bad_capture()), consumer_checks=kinds)


# ---- each capture's samples are read once for the check ---------------------------------------------------
def _key(arr: np.ndarray) -> bytes:
    """Which capture a read was of: its first 16 float values (the simulated noise tells captures apart)."""
    return np.ascontiguousarray(arr).reshape(-1).view(np.float32)[:16].tobytes()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[bytes]:
    """Every read of a sample buffer by the finiteness test, per buffer (:func:`_key`).

    ``_plain_sum`` is the one pass every sample check makes (``Capture.check_samples`` and ``first_nonfinite``,
    whoever calls them: the wire, the sensing, the writer, the reader), so counting its calls counts the reads;
    threads (a host's) count too.
    """
    counts: collections.Counter[bytes] = collections.Counter()
    lock = threading.Lock()
    real = capture_mod._plain_sum

    def counting(parts: np.ndarray) -> float:
        with lock:
            counts[_key(parts)] += 1
        return real(parts)

    monkeypatch.setattr(capture_mod, "_plain_sum", counting)
    return counts


def _noise(shape: tuple[int, int] = (2, 300), seed: int = 1, **fields: Any) -> Capture:
    rng = np.random.default_rng(seed)
    iq = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    return Capture(iq=iq, sample_rate_hz=1e6, node_id="n1", seq=4, **fields)


def test_a_capture_checks_its_samples_again_unless_it_is_asked_to_check_once(reads: collections.Counter[bytes]) -> None:
    plain = _noise()
    assert [plain.check_samples() for _ in range(3)] == [True] * 3 and reads[_key(plain.iq)] == 3
    # its samples can change (a writeable iq): a plain capture never answers from an earlier check
    plain.iq[1, 7] = complex(np.nan, 0)
    with pytest.raises(NonFiniteSampleError, match=r"iq\[1, 7\] = \(?nan"):
        plain.check_samples()
    reads.clear()
    once = _noise(seed=2).checked_once()
    assert once.checked_once() is once                                   # asked twice: the same capture
    assert [once.check_samples() for _ in range(3)] == [True] * 3 and reads[_key(once.iq)] == 1
    assert not Capture(iq=np.zeros((1, 8), np.complex64), sample_rate_hz=1.0).checked_once().check_samples()


def _outcome(capture: Capture) -> bool | str:
    try:
        return capture.check_samples()
    except NonFiniteSampleError as err:
        return str(err)


@settings(max_examples=200, deadline=None)
@given(arrays().filter(lambda a: a.dtype.kind in "fc" and a.ndim >= 1 and a.size < 10**5))
def test_checking_once_answers_as_checking_every_time(arr: np.ndarray) -> None:
    """Empty, all-zero, NaN, infinite, overflowing, subnormal: the first and every later answer (result or
    refusal, word for word) is the plain capture's."""
    with np.errstate(over="ignore", invalid="ignore"):
        iq = arr.reshape(-1).astype(np.complex64)
    plain = Capture(iq=iq, sample_rate_hz=1e6, node_id="n1", seq=4)
    once = plain.checked_once()
    expected = _outcome(plain)
    assert [_outcome(once) for _ in range(3)] == [expected] * 3


def test_checked_once_shares_the_samples_and_keeps_every_field() -> None:
    base = _noise(metadata={"gain_db": 3})
    once = base.checked_once()
    assert once is not base and once.iq is base.iq and once.metadata is base.metadata
    assert {f.name: getattr(once, f.name) for f in dataclasses.fields(Capture)} == \
        {f.name: getattr(base, f.name) for f in dataclasses.fields(Capture)}
    other = once.with_metadata({"x": 1})
    assert other.metadata == {"x": 1} and other.iq is base.iq and once.metadata == {"gain_db": 3}
    assert not hasattr(base, "_check_once")                     # the caller's capture is left as it was


def test_what_a_capture_that_checks_once_remembers(reads: collections.Counter[bytes]) -> None:
    """Only a passed check, only for the same samples: a failure raises again, new samples are read."""
    bad = _noise()
    bad.iq[0, 250] = complex(0, -np.inf)
    once = bad.checked_once()
    for _ in range(2):                                                   # the same refusal, the same message
        with pytest.raises(NonFiniteSampleError, match=r"^capture n1/4 contains NaN or infinite samples: "
                                                       r"iq\[0, 250\] = "):
            once.check_samples()
    good = _noise(seed=3).checked_once()
    assert good.check_samples()
    reads.clear()
    # dataclasses.replace makes a capture that checks again (it may carry other samples)
    swapped = dataclasses.replace(good, iq=bad.iq)
    with pytest.raises(NonFiniteSampleError, match=r"iq\[0, 250\]"):
        swapped.check_samples()
    assert dataclasses.replace(good, seq=5).check_samples() and reads[_key(good.iq)] == 1
    # a pickled copy (a worker process) holds the same samples: it keeps the result; so does with_metadata
    reads.clear()
    copied = pickle.loads(pickle.dumps(good))
    assert copied.check_samples() and good.with_metadata({}).check_samples() and sum(reads.values()) == 0


def test_the_writer_takes_a_checked_capture_without_reading_it_and_still_refuses_nan(
        tmp_path: Path, reads: collections.Counter[bytes]) -> None:
    good = _noise().checked_once()
    assert good.check_samples()
    bad = _noise(seed=5)
    bad.iq[1, 17] = complex(np.nan, 0)
    with RecordingWriter(tmp_path / "r", sample_rate_hz=1e6, center_freq_hz=0.0, num_channels=2) as writer:
        writer.append(good)
        assert reads[_key(good.iq)] == 1                                 # the check above, not the writer's
        for capture in (bad, bad.checked_once()):
            with pytest.raises(RecordingError, match=r"capture seq 4: samples\[1, 17\] = \(?nan.*: allowed finite "
                                                     r"samples; remove NaN or infinite values before recording"):
                writer.append(capture)
        assert writer.num_captures == 1
    with open_recording(tmp_path / "r.sigmf-meta") as rec:
        assert len(rec) == 1 and np.array_equal(rec.capture(0).iq, good.iq)

# ---- a running host -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("recording, sync", [(False, "capture"), (True, "capture"), (False, "correlate")])
def test_host_rejects_a_capture_with_a_nan_sample_and_senses_the_rest(tmp_path: Path, recording: bool, sync: str,
                                                                     reads: collections.Counter[bytes]) -> None:
    """... and reads each capture's samples once for the check, recording or not (before: three times when
    recording, the host's check, the writer's and the sensing's)."""
    _, cfg = make_config(tmp_path)
    cfg = dataclasses.replace(cfg, sensing=dataclasses.replace(cfg.sensing, sync=sync))
    captures = _captures(cfg, 4)
    iq = captures[1].iq.copy()
    iq[0, iq.shape[1] // 2] = complex(0, np.inf)
    bad = dataclasses.replace(captures[1], iq=iq)
    record_dir = tmp_path / "rec" if recording else None
    with FusionHost(cfg, record_dir=record_dir) as host:
        _push(cfg.stream.host_endpoint, [wire.encode_capture(c) for c in (captures[0], bad, *captures[2:])]
              + [wire.encode_heartbeat("a", 0, {"final": True})])
        assert wait_for(lambda: host.finished({"a"}), 60)
        stats = host.stats()
    counted = dict(reads)
    good = (captures[0], *captures[2:])
    assert [counted.get(_key(c.iq)) for c in good] == [1, 1, 1], counted
    assert 1 <= counted[_key(bad.iq)] <= 2             # refused at its one check (read again only to name it)
    assert stats["receiver_alive"] and stats["worker_alive"]
    assert stats["rejected"] == 1 and stats["errors_total"] == 0, stats["errors"]
    node = stats["nodes"]["a"]
    assert node["received"] == 4 and node["processed"] == 3 and node["failed"] == 1
    assert any("contains NaN or infinite samples" in e and f"a/{bad.seq}" in e for e in stats["errors"])
    if recording:
        with open_recording(tmp_path / "rec" / "a.sigmf-meta") as rec:
            assert [rec.capture(i).seq for i in range(len(rec))] == [c.seq for c in (captures[0], *captures[2:])]


def test_the_batch_path_keeps_small_transforms_on_one_thread() -> None:
    """A CPU backend made with the default fft_workers runs the single-frame maps with fft_workers 0 (size-aware)."""
    from sdr_isac.sensing import batch
    from sdr_isac.sensing.backend import array_backend
    assert batch._workers_setting(array_backend("cpu")) == 0
    assert batch._workers_setting(array_backend("cpu", workers=3)) == 3


# ---- a receive-only node sensed once per transmitter: k jobs, one read -------------------------------------
_FRAME = "numerology = 3, num_rb = 10, fft_size = 128, carrier_hz = 24e9, num_slots = 1, data = { enabled = false }"
PASSIVE = """
name = "two_sources"
[frame]
FRAME_LINES
prs = { comb_size = 2, num_symbols = 2, start_symbol = 1, re_offset = 0 }
[radio]
node_id = "r"
[scene]
seed = 3
[[scene.nodes]]
id = "a"
[[scene.nodes]]
id = "b"
position_m = [80.0, 0.0, 0.0]
frame = { FRAME, prs = { comb_size = 2, num_symbols = 2, start_symbol = 1, re_offset = 1 } }
[[scene.nodes]]
id = "r"
transmits = false
position_m = [40.0, -30.0, 0.0]
[[scene.targets]]
id = "t"
position_m = [50.0, 5.0, 0.0]
velocity_mps = [-10.0, 0.0, 0.0]
snr_per_re_db = 5
[stream]
host_endpoint = "tcp://127.0.0.1:PORT"
publish_endpoint = "tcp://127.0.0.1:PUBLISH"
heartbeat_s = 0.1
absent_after_heartbeats = 20
""".replace("FRAME_LINES", _FRAME.replace(", ", "\n")).replace("FRAME", _FRAME)


def _passive() -> tuple[config.Config, list[Capture]]:
    """Node r (receive-only) hears a and b on disjoint PRS combs: its captures are sensed twice each."""
    port, publish = free_ports(2)
    cfg = config.loads(PASSIVE.replace("PUBLISH", str(publish)).replace("PORT", str(port)))
    assert FusionEngine(cfg).passive_sources("r") == ["a", "b"]
    with radio.open_radio(cfg) as r:                     # receive-only: it hears a and b, sends nothing
        length = r.capture_length(IsacFrame(cfg.frame).num_samples)
        with_nan = [r.rx(length) for _ in range(4)]
    iq = with_nan[1].iq.copy()
    iq[0, 700] = complex(np.nan, 1.0)
    with_nan[1] = dataclasses.replace(with_nan[1], iq=iq)
    return cfg, with_nan


@pytest.fixture
def sensed_jobs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The node id of every sensing job run (``sensing.process`` as the engine calls it), in this process."""
    runs: list[str] = []
    real = sensing.process

    def counting(capture: Capture, *args: Any, **kwargs: Any) -> sensing.SensingResult:
        runs.append(capture.node_id)
        return real(capture, *args, **kwargs)

    monkeypatch.setattr(sensing, "process", counting)
    return runs


def test_a_receive_only_node_s_jobs_read_its_samples_once(reads: collections.Counter[bytes],
                                                          sensed_jobs: list[str]) -> None:
    cfg, (good, bad, *_) = _passive()
    engine = FusionEngine(cfg)
    result = engine.sense(good, good.seq)
    assert set(result.by_source) == {"a", "b"} and len(sensed_jobs) == 2
    assert reads[_key(good.iq)] == 1                                     # before: once per job
    assert not hasattr(good, "_check_once")                             # the caller's capture is left as it was
    sensed_jobs.clear()
    with pytest.raises(NonFiniteSampleError, match=r"^capture r/1 contains NaN or infinite samples: iq\[0, 700\]"):
        engine.sense(bad, bad.seq)
    assert len(sensed_jobs) == 1                                         # refused by the first job's check
    good.iq[0, 3] = complex(np.inf, 0)                                   # a writeable capture changed after sensing
    with pytest.raises(NonFiniteSampleError, match=r"iq\[0, 3\]"):
        engine.sense(good, good.seq)                                     # is checked again


@pytest.mark.parametrize("recording", [True, False])
def test_a_host_reads_a_receive_only_node_s_capture_once(tmp_path: Path, recording: bool,
                                                         reads: collections.Counter[bytes],
                                                         sensed_jobs: list[str]) -> None:
    cfg, captures = _passive()
    with FusionHost(cfg, record_dir=tmp_path / "rec" if recording else None) as host:
        _push(cfg.stream.host_endpoint, [wire.encode_capture(c) for c in captures]
              + [wire.encode_heartbeat("r", 0, {"final": True})])
        assert wait_for(lambda: host.finished({"r"}), 60)
        stats = host.stats()
    counted = dict(reads)
    good = [captures[0], *captures[2:]]
    # (recorded and) sensed twice, each read once: before, twice (one per job), four times when recording (the
    # host's check, the writer's, one per job)
    assert [counted.get(_key(c.iq)) for c in good] == [1, 1, 1], counted
    # the NaN capture: refused before recording, or by the first job's check
    assert len(sensed_jobs) == 2 * len(good) + (0 if recording else 1)
    assert stats["rejected"] == 1 and stats["errors_total"] == 0, stats["errors"]
    node = stats["nodes"]["r"]
    assert node["received"] == 4 and node["processed"] == 3 and node["failed"] == 1
    assert any("capture r/1 contains NaN or infinite samples: iq[0, 700]" in e for e in stats["errors"])
    if recording:
        with open_recording(tmp_path / "rec" / "r.sigmf-meta") as rec:
            assert [rec.capture(i).seq for i in range(len(rec))] == [c.seq for c in good]


# ---- a recording read back and replayed --------------------------------------------------------------------
@pytest.mark.parametrize("datatype, channels", [("cf32_le", 1), ("cf32_le", 2), ("ci16_le", 1)])
def test_a_recorded_capture_is_read_once_by_the_reader_and_the_sensing(
        tmp_path: Path, reads: collections.Counter[bytes], datatype: str, channels: int) -> None:
    """The reader refuses a NaN naming its file sample; the sensing then takes that check's result (before: the
    reader's check and the sensing's, two reads).  One channel of cf32 is a view of the file map, the others a
    decoded copy: both read-only."""
    _, cfg = make_config(tmp_path)
    (source,) = _captures(cfg, 1)
    if channels == 2:
        source = dataclasses.replace(source, iq=np.vstack([source.iq, 0.5 * source.iq]))
    if datatype.startswith("ci"):
        source = dataclasses.replace(source, iq=source.iq / (4 * np.max(np.abs(source.iq.view(np.float32)))))
    with RecordingWriter(tmp_path / "r", sample_rate_hz=source.sample_rate_hz, center_freq_hz=source.center_freq_hz,
                         num_channels=channels, datatype=datatype, frame=cfg.frame) as writer:
        writer.append(source)
    reads.clear()
    with open_recording(tmp_path / "r.sigmf-meta") as rec:
        stored = rec.capture(0)
    assert not stored.iq.flags.writeable and reads[_key(stored.iq)] == 1
    with pytest.raises(ValueError, match="read-only"):
        stored.iq[0, 0] = 0
    result = sensing.process(stored, IsacFrame(cfg.frame), cfg.sensing)
    assert result.map is not None and reads[_key(stored.iq)] == 1          # the sensing's check read nothing
    # the same samples copied into a plain capture are checked again: the saving is the reader's promise alone
    sensing.process(dataclasses.replace(stored, iq=stored.iq.copy()), IsacFrame(cfg.frame), cfg.sensing)
    assert reads[_key(stored.iq)] == 2


def test_a_replayed_capture_keeps_the_reader_s_check_and_a_nan_is_named_by_file_sample(
        tmp_path: Path, reads: collections.Counter[bytes]) -> None:
    _, cfg = make_config(tmp_path)
    good, second = _captures(cfg, 2)
    with RecordingWriter(tmp_path / "r", sample_rate_hz=good.sample_rate_hz, center_freq_hz=good.center_freq_hz,
                         num_channels=1, frame=cfg.frame) as writer:
        writer.append(good)
        writer.append(second)
    with open(tmp_path / "r.sigmf-data", "r+b") as data:                # corrupt the file: sample 9 of capture 1
        data.seek((good.num_samples + 9) * 8)
        data.write(np.float32(np.nan).tobytes())
    meta = json.loads((tmp_path / "r.sigmf-meta").read_text())
    del meta["global"]["core:sha512"]                                   # (SigMF's checksum is optional)
    (tmp_path / "r.sigmf-meta").write_text(json.dumps(meta))
    reads.clear()
    replay_cfg = dataclasses.replace(cfg, radio=config.RadioConfig(kind="replay", uri=str(tmp_path / "r.sigmf-meta")))
    with radio.open_radio(replay_cfg) as r:
        first = r.rx(good.num_samples)
        assert first.seq == 0 and first.metadata["replay"]["index"] == 0 and first.iq is not good.iq
        assert sensing.process(first, IsacFrame(cfg.frame), cfg.sensing).map is not None
        assert reads[_key(first.iq)] == 1                               # the reader's check, taken by the sensing
        with pytest.raises(Exception, match=r"capture 1: samples\[0, 9\] \(file sample "
                                            rf"{good.num_samples + 9}\) = \(?nan.*allowed finite I/Q values"):
            r.rx(good.num_samples)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(["sample_rate_hz", "center_freq_hz", "t0_s", "node_id", "seq", "frame_offset",
                             "metadata", "frame", "iq", "bogus", "_nonzero"]),
       value=st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                       st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))
def test_with_fields_answers_as_replace_and_keeps_the_check_only_for_the_same_samples(name: str, value: Any) -> None:
    """Any value in any field: the capture ``dataclasses.replace`` makes (or its refusal), with the check kept;
    ``iq`` and names that are not fields are refused, naming the fields allowed."""
    good = _noise().checked_once()
    assert good.check_samples()
    if name in ("iq", "bogus", "_nonzero"):
        with pytest.raises(InputError, match=rf"Capture\.with_fields\({name}=\.\.\.\): allowed the fields "
                                             "center_freq_hz, frame, frame_offset, metadata, node_id, sample_rate_hz"):
            good.with_fields(**{name: value})
        return
    try:
        expected: Any = dataclasses.replace(good, **{name: value})
    except Exception as err:                                          # noqa: BLE001  the constructor's refusal
        with pytest.raises(type(err)):
            good.with_fields(**{name: value})
        return
    out = good.with_fields(**{name: value})
    assert out.iq is good.iq and out.__dict__.get("_nonzero") is True and out.__dict__.get("_check_once")
    for f in dataclasses.fields(Capture):
        mine, theirs = getattr(out, f.name), getattr(expected, f.name)
        assert mine is theirs or (isinstance(mine, float) and math.isnan(mine) and math.isnan(theirs)) \
            or mine == theirs
