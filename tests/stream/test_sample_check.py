"""Every capture sample is checked once, where it is read (issue 17, item 2).

``first_nonfinite`` is the one finiteness test (the wire's receiver, the sensing pipeline, the recorder), fuzzed
against ``np.isfinite`` at the edges: empty and large arrays, NaN and infinities anywhere, finite values whose sum
overflows, subnormals, integers and booleans.  ``wire.decode(..., consumer_checks=("capture",))`` leaves a
capture's values to its consumer and checks everything else; a running host counts a capture with a NaN sample
``rejected``, keeps it out of its recording and senses the others.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sdr_isac.capture import Capture, first_nonfinite
from sdr_isac.errors import InputError, NonFiniteSampleError, SensingError, WireFormatError
from sdr_isac.recording import open_recording
from sdr_isac.stream import FusionHost, wire
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


# ---- a running host -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("recording, sync", [(False, "capture"), (True, "capture"), (False, "correlate")])
def test_host_rejects_a_capture_with_a_nan_sample_and_senses_the_rest(tmp_path: Path, recording: bool,
                                                                     sync: str) -> None:
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
