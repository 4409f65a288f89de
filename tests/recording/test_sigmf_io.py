"""Layer 1: SigMF recordings of captures (sdr_isac.recording)."""

from __future__ import annotations

import json
import tempfile
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import sigmf
from hypothesis import given, settings
from hypothesis import strategies as st
from sigmf import validate as sigmf_validate

from sdr_isac.capture import Capture
from sdr_isac.config import DmrsConfig, FrameConfig, PrsConfig, SrsConfig
from sdr_isac.errors import InputError, RecordingError
from sdr_isac.recording import Recording, RecordingWriter, describe, open_recording, write_captures

FS_HZ = 7.68e6
FC_HZ = 3.5e9


@pytest.fixture
def frame() -> FrameConfig:
    """A frame with tuples, nested sections and None fields, to test the JSON round trip."""
    return FrameConfig(numerology=1, num_rb=20, num_slots=2, prs=PrsConfig(comb_size=2, num_symbols=2),
                       dmrs=DmrsConfig(ports=(0, 1)), srs=SrsConfig(num_rb=16))


def make_captures(rng, frame, num=3, channels=2, node_id="bs0"):
    captures = []
    for k in range(num):
        n = 64 + 17 * k
        iq = 0.3 * (rng.standard_normal((channels, n)) + 1j * rng.standard_normal((channels, n)))
        captures.append(Capture(np.clip(iq.real, -0.99, 0.99) + 1j * np.clip(iq.imag, -0.99, 0.99),
                                sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, t0_s=0.5 + 1e-3 * k,
                                node_id=node_id, seq=10 + k, frame=frame, frame_offset=3 * k,
                                metadata={"rx_gain_db": 30.0 + k, "channels": list(range(channels)),
                                          "tag": np.int64(k), "arr": np.arange(2.0)}))
    return captures


def truths(num):
    return [{"targets": [{"id": "t0", "range_m": 50.0 + k, "velocity_mps": -3.5},
                         {"id": "t1", "range_m": 120.25, "velocity_mps": 7.0}],
             "snr_db": 12.5} for k in range(num)]


def write(path, captures, **kw):
    kw = {"sample_rate_hz": FS_HZ, "center_freq_hz": FC_HZ, "num_channels": captures[0].num_channels, **kw}
    with RecordingWriter(path, **kw) as w:
        for c, t in zip(captures, truths(len(captures))):
            w.append(c, truth=t)
    return w


# ---- round trips ------------------------------------------------------------------
def test_round_trip_multi_capture_multi_channel(tmp_path, rng, frame):
    captures = make_captures(rng, frame, num=4, channels=3)
    node = {"id": "bs0", "role": "bs", "position_m": (0.0, 1.0, 2.0)}
    radio = {"kind": "sim", "node_id": "bs0", "rx_gain_db": 30.0}
    write(tmp_path / "run", captures, node=node, radio=radio, description="two targets")
    with Recording.open(tmp_path / "run") as rec:
        assert (rec.num_captures, rec.num_channels, rec.datatype) == (4, 3, "cf32_le")
        assert rec.sample_rate_hz == FS_HZ and rec.center_freq_hz == FC_HZ
        assert rec.frame == frame
        assert rec.node == {"id": "bs0", "role": "bs", "position_m": [0.0, 1.0, 2.0]}
        assert rec.radio == radio and rec.description == "two targets"
        assert rec.num_samples == sum(c.num_samples for c in captures)
        for k, (got, want) in enumerate(zip(rec, captures)):
            assert got.iq.dtype == np.complex64 and got.iq.shape == want.iq.shape
            np.testing.assert_array_equal(got.iq, want.iq)
            assert (got.seq, got.t0_s, got.node_id, got.frame_offset) == (want.seq, want.t0_s, "bs0", 3 * k)
            assert got.frame == frame
            assert got.sample_rate_hz == FS_HZ and got.center_freq_hz == FC_HZ
            assert got.metadata == {"rx_gain_db": 30.0 + k, "channels": [0, 1, 2], "tag": k, "arr": [0.0, 1.0]}
            assert rec.truth(k) == truths(4)[k]
        np.testing.assert_array_equal(rec.read(60, 10), np.concatenate([c.iq for c in captures], axis=1)[:, 60:70])


def test_multichannel_samples_are_interleaved_per_sample_as_sigmf_reads_them(tmp_path, rng, frame):
    captures = make_captures(rng, frame, num=2, channels=2)
    write(tmp_path / "run", captures)
    raw = np.fromfile(tmp_path / "run.sigmf-data", dtype="<c8")
    expected = np.concatenate([c.iq for c in captures], axis=1)           # (C, N)
    np.testing.assert_array_equal(raw[:4], [expected[0, 0], expected[1, 0], expected[0, 1], expected[1, 1]])
    theirs = sigmf.fromfile(tmp_path / "run.sigmf-meta").read_samples()    # the sigmf package's own reader
    np.testing.assert_array_equal(theirs, expected.T)


@pytest.mark.parametrize("datatype, atol", [("cf32_le", 0.0), ("cf64_le", 0.0), ("ci16_le", 2**-16), ("ci8", 2**-8)])
def test_datatypes_round_trip(tmp_path, rng, frame, datatype, atol):
    captures = make_captures(rng, frame, num=2, channels=2)
    write(tmp_path / "run", captures, datatype=datatype)
    with Recording.open(tmp_path / "run") as rec:
        assert rec.datatype == datatype
        assert rec.scale == {"ci16_le": 1 / 32768, "ci8": 1 / 128}.get(datatype, 1.0)
        for got, want in zip(rec, captures):
            assert got.iq.dtype == np.complex64
            np.testing.assert_allclose(got.iq.real, want.iq.real, rtol=0, atol=atol * 1.0001)
            np.testing.assert_allclose(got.iq.imag, want.iq.imag, rtol=0, atol=atol * 1.0001)
    if datatype == "ci16_le":                                              # same scaling as the sigmf package
        theirs = sigmf.fromfile(tmp_path / "run.sigmf-meta").read_samples()
        np.testing.assert_allclose(theirs.T, Recording.open(tmp_path / "run").read(0, theirs.shape[0]))


@settings(max_examples=12, deadline=None)
@given(channels=st.integers(1, 4), lengths=st.lists(st.integers(0, 40), min_size=1, max_size=4),
       datatype=st.sampled_from(["cf32_le", "cf64_le", "ci16_le", "ci8"]), seed=st.integers(0, 2**32 - 1))
def test_round_trip_any_shape(channels, lengths, datatype, seed):
    rng = np.random.default_rng(seed)
    captures = [Capture(rng.uniform(-1, 1, (channels, n)) + 1j * rng.uniform(-1, 1, (channels, n)), FS_HZ, FC_HZ,
                        seq=k, t0_s=k * 1e-3) for k, n in enumerate(lengths)]
    atol = {"ci16_le": 2**-15, "ci8": 2**-7}.get(datatype, 0.0)           # half a step, or a clip at +1.0
    with tempfile.TemporaryDirectory() as tmp:
        write_captures(Path(tmp) / "h", captures, datatype=datatype)
        with Recording.open(Path(tmp) / "h") as rec:
            assert rec.num_captures == len(lengths) and rec.num_samples == sum(lengths)
            for got, want in zip(rec, captures):
                assert got.iq.shape == (channels, want.num_samples) and (got.seq, got.t0_s) == (want.seq, want.t0_s)
                np.testing.assert_allclose(got.iq.real, want.iq.real, rtol=0, atol=atol)
                np.testing.assert_allclose(got.iq.imag, want.iq.imag, rtol=0, atol=atol)


def test_ci16_full_scale_is_2_pow_15(tmp_path):
    c = Capture(np.array([[0.5, -1.0, 1.0, 0.25j]], dtype=np.complex64), FS_HZ, FC_HZ)
    write_captures(tmp_path / "x", [c], datatype="ci16_le")
    raw = np.fromfile(tmp_path / "x.sigmf-data", dtype="<i2")
    np.testing.assert_array_equal(raw, [16384, 0, -32768, 0, 32767, 0, 0, 8192])


@pytest.mark.parametrize("suffix", ["", ".sigmf-meta", ".sigmf-data"])
def test_path_with_or_without_suffix(tmp_path, rng, frame, suffix):
    w = write(tmp_path / f"a.b{suffix}", make_captures(rng, frame, num=1))
    assert w.meta_path == tmp_path / "a.b.sigmf-meta" and w.data_path == tmp_path / "a.b.sigmf-data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.b.sigmf-data", "a.b.sigmf-meta"]
    for name in ("a.b", "a.b.sigmf-meta", "a.b.sigmf-data"):
        assert open_recording(tmp_path / name).num_captures == 1


def test_write_captures_takes_parameters_from_the_first_capture(tmp_path, rng, frame):
    captures = make_captures(rng, frame, num=3, channels=1)
    meta = write_captures(tmp_path / "w", captures, truths=[None, {"targets": []}, None])
    assert meta == tmp_path / "w.sigmf-meta"
    rec = Recording.open(meta)
    assert rec.frame == frame and rec.num_channels == 1
    assert [rec.truth(k) for k in range(3)] == [{}, {"targets": []}, {}]
    with pytest.raises(InputError, match="truths has 1 entries for 3 captures"):
        write_captures(tmp_path / "v", captures, truths=[None])
    with pytest.raises(InputError, match="captures is empty"):
        write_captures(tmp_path / "v", [])


def test_empty_recording(tmp_path):
    write_captures(tmp_path / "e", [], sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=2)
    rec = Recording.open(tmp_path / "e")
    assert rec.num_captures == 0 and list(rec) == [] and rec.read(0, 0).shape == (2, 0)


# ---- SigMF conformance -----------------------------------------------------------------
def test_meta_validates_with_the_sigmf_validator(tmp_path, rng, frame):
    write(tmp_path / "run", make_captures(rng, frame), node={"id": "bs0"}, radio={"kind": "sim"})
    metadata = json.loads((tmp_path / "run.sigmf-meta").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                  # undeclared namespaces warn
        sigmf_validate.validate(metadata)
        sigmf.fromfile(tmp_path / "run.sigmf-meta").validate()          # checks core:sha512 too
    g = metadata["global"]
    assert {e["name"] for e in g["core:extensions"]} == {"isac", "truth"}
    assert g["core:recorder"] == "sdr_isac" and g["isac:schema"] == 1 and g["core:hw"] == "sim"
    assert g["core:num_channels"] == 2 and g["core:datatype"] == "cf32_le"
    ann = metadata["annotations"][1]
    assert ann["core:sample_start"] == 64 and ann["core:sample_count"] == 81
    assert ann["isac:seq"] == 11 and ann["isac:node_id"] == "bs0" and ann["truth:targets"][0]["range_m"] == 51.0
    assert [c["core:sample_start"] for c in metadata["captures"]] == [0, 64, 145]
    assert open_recording(tmp_path / "run", verify_checksum=True).num_captures == 3


def test_foreign_recording_opens_with_a_user_frame(tmp_path, rng, frame):
    samples = (rng.standard_normal(1000) + 1j * rng.standard_normal(1000)).astype(np.complex64)
    meta = sigmf.fromarray(samples)
    meta.sample_rate = FS_HZ
    meta.add_capture(0, metadata={sigmf.FREQUENCY_KEY: 2.4e9})
    meta.add_annotation(100, length=50, metadata={sigmf.LABEL_KEY: "burst"})   # not a capture annotation
    meta.tofile(tmp_path / "foreign")
    rec = Recording.open(tmp_path / "foreign.sigmf-meta", frame=frame)
    assert not rec.is_isac and rec.num_captures == 1 and rec.frame == frame
    cap = rec.capture(0)
    assert cap.center_freq_hz == 2.4e9 and cap.seq == 0 and cap.frame == frame and rec.truth(0) == {}
    np.testing.assert_array_equal(cap.iq[0], samples)
    assert len(rec.annotations) == 1
    blocks = Recording.open(tmp_path / "foreign", frame=frame, samples_per_capture=300)
    assert blocks.num_captures == 3
    np.testing.assert_array_equal(blocks.capture(2).iq[0], samples[600:900])
    assert blocks.capture(2).t0_s == pytest.approx(600 / FS_HZ)
    assert Recording.open(tmp_path / "foreign").frame is None
    with pytest.raises(InputError, match="samples_per_capture = 0: allowed an integer >= 1"):
        Recording.open(tmp_path / "foreign", samples_per_capture=0)


def test_foreign_ci16_two_channels(tmp_path):
    ints = np.arange(-20, 20, dtype="<i2").reshape(10, 2, 2)             # (n, C, IQ)
    (tmp_path / "f.sigmf-data").write_bytes(ints.tobytes())
    meta = sigmf.SigMFFile(data_file=tmp_path / "f.sigmf-data",
                           global_info={sigmf.DATATYPE_KEY: "ci16_le", sigmf.SAMPLE_RATE_KEY: 1e6,
                                        sigmf.NUM_CHANNELS_KEY: 2})
    meta.tofile(tmp_path / "f")
    iq = Recording.open(tmp_path / "f").capture(0).iq
    assert iq.shape == (2, 10)
    assert iq[1, 3] == pytest.approx((ints[3, 1, 0] + 1j * ints[3, 1, 1]) / 32768)


def test_frame_argument_overrides_the_stored_frame(tmp_path, rng, frame):
    write(tmp_path / "run", make_captures(rng, frame))
    other = FrameConfig(numerology=0, num_rb=6)
    with Recording.open(tmp_path / "run", frame=other) as rec:
        assert rec.frame == other and rec.capture(0).frame == other


# ---- memory mapping --------------------------------------------------------------------
def test_data_is_memory_mapped_not_read_whole(tmp_path):
    n = 1 << 19                                                         # 4 captures x 512 Ki x 2 ch x 8 B = 32 MiB
    capture = Capture(np.zeros((2, n), np.complex64), FS_HZ, FC_HZ)
    with RecordingWriter(tmp_path / "big", sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=2) as w:
        for _ in range(4):
            w.append(capture)
    size = (tmp_path / "big.sigmf-data").stat().st_size
    assert size == 4 * n * 2 * 8
    tracemalloc.start()
    try:
        rec = Recording.open(tmp_path / "big")
        part = rec.read(3 * n, 1000)
        _, peak_open = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        one = rec.capture(1)
        _, peak_capture = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(rec._data, np.memmap) and rec._data.shape == (4 * n, 2)
    assert part.shape == (2, 1000) and one.iq.shape == (2, n)
    assert peak_open < size / 50                                        # opening and a short read: ~nothing
    assert peak_capture < 1.5 * capture.iq.nbytes                       # one capture, not the whole file
    rec.close()
    with pytest.raises(RecordingError, match="closed"):
        rec.capture(0)


# ---- bad input -------------------------------------------------------------------------
@pytest.fixture
def good(tmp_path, rng, frame) -> Path:
    write(tmp_path / "good", make_captures(rng, frame, num=3, channels=2))
    return tmp_path / "good"


def edit_meta(base: Path, change) -> None:
    path = base.with_name(base.name + ".sigmf-meta")
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata))


def test_unknown_datatype(good):
    edit_meta(good, lambda m: m["global"].update({"core:datatype": "ri16_le"}))
    with pytest.raises(RecordingError, match=r"good.sigmf-meta: core:datatype = 'ri16_le': real-valued samples; "
                                             r"allowed complex \(I/Q\) samples: cf32_le, cf32_be, .* or cu8") as err:
        Recording.open(good)
    assert "set the datatype" not in str(err.value)          # relabelling would misread the bytes


def test_datatype_that_is_not_sigmf(good):
    edit_meta(good, lambda m: m["global"].update({"core:datatype": "complex64"}))
    with pytest.raises(RecordingError, match=r"invalid SigMF metadata at global/core:datatype"):
        Recording.open(good)


def test_missing_sample_rate(good):
    edit_meta(good, lambda m: m["global"].pop("core:sample_rate"))
    with pytest.raises(RecordingError, match=r"good.sigmf-meta: core:sample_rate is missing: allowed a number > 0 Hz"):
        Recording.open(good)


def test_invalid_json(good):
    good.with_name("good.sigmf-meta").write_text('{"global": {"core:datatype": "cf32_le",')
    with pytest.raises(RecordingError, match=r"good.sigmf-meta: invalid JSON at line 1"):
        Recording.open(good)


def test_missing_meta_and_data_files(good):
    with pytest.raises(RecordingError, match=r"nothere.sigmf-meta: metadata file not found"):
        Recording.open(good.with_name("nothere"))
    good.with_name("good.sigmf-data").unlink()
    with pytest.raises(RecordingError, match=r"good.sigmf-data: data file not found"):
        Recording.open(good)


def test_a_file_that_is_not_sigmf_and_data_without_metadata_are_told_apart(good, tmp_path):
    """A raw capture (a .wav, a .bin of another tool) given as a recording is named as not SigMF; a data file
    copied without its metadata is named as such (both read 'metadata file not found' before)."""
    raw = tmp_path / "capture.bin"
    raw.write_bytes(b"\0" * 64)
    with pytest.raises(RecordingError, match=r"capture\.bin is a file but not a SigMF recording \(no "
                                             r"capture\.bin\.sigmf-meta beside it\).*core fields"):
        Recording.open(raw)
    good.with_name("good.sigmf-meta").unlink()
    for path in (good, good.with_name("good.sigmf-data")):
        with pytest.raises(RecordingError, match=r"good\.sigmf-meta: metadata file not found beside the data file "
                                                 r"good\.sigmf-data"):
            Recording.open(path)


def test_data_not_a_whole_number_of_samples(good):
    data = good.with_name("good.sigmf-data")
    data.write_bytes(data.read_bytes()[:-3])
    with pytest.raises(RecordingError, match=r"good.sigmf-data: \d+ bytes of samples: allowed a multiple of 16 bytes"):
        Recording.open(good)


def test_data_shorter_than_annotations(good):
    data = good.with_name("good.sigmf-data")
    data.write_bytes(data.read_bytes()[:-16 * 5])                       # five whole samples of two channels
    with pytest.raises(RecordingError, match=r"core:sha512 = \w+\.\.\. but the data file hashes to"):
        Recording.open(good)
    with pytest.raises(RecordingError, match=r"holds 238 samples per channel but capture 2 \(isac:seq 12\) "
                                             r"claims samples 145 ... 242"):
        Recording.open(good, verify_checksum=False)


def test_data_longer_than_the_captures(good):
    data = good.with_name("good.sigmf-data")
    data.write_bytes(data.read_bytes() + bytes(16 * 4))
    with pytest.raises(RecordingError, match=r"holds 247 samples per channel but the captures of good.sigmf-meta "
                                             r"end at sample 243"):
        Recording.open(good, verify_checksum=False)


def test_checksum_mismatch(good):
    data = good.with_name("good.sigmf-data")
    raw = bytearray(data.read_bytes())
    raw[0] ^= 1
    data.write_bytes(bytes(raw))
    with pytest.raises(RecordingError, match=r"core:sha512 = \w+\.\.\. but the data file hashes to \w+\.\.\.: "
                                             r"allowed matching checksums"):
        Recording.open(good)                                           # checked by default
    with pytest.raises(RecordingError, match=r"core:sha512 = \w+\.\.\. but the data file hashes to"):
        describe(good)
    assert Recording.open(good, verify_checksum=False).num_captures == 3    # the explicit opt-out


def test_nan_samples_raise_on_capture(good):
    mm = np.memmap(good.with_name("good.sigmf-data"), dtype="<c8", mode="r+")
    mm[64 * 2 + 5 * 2 + 1] = np.nan + 0j                               # capture 1, sample 5, channel 1
    mm.flush()
    del mm
    rec = Recording.open(good, verify_checksum=False)
    rec.capture(0)
    with pytest.raises(RecordingError, match=r"capture 1: samples\[1, 5\] \(file sample 69\) = \(?nan.*allowed "
                                             r"finite I/Q values"):
        rec.capture(1)


def test_invalid_stored_frame(good):
    edit_meta(good, lambda m: m["global"]["isac:frame"].update({"numerology": 7}))
    with pytest.raises(RecordingError, match=r"isac:frame.numerology = 7: allowed 0 ... 4"):
        Recording.open(good)
    assert Recording.open(good, frame=FrameConfig()).frame == FrameConfig()


def test_newer_schema(good):
    edit_meta(good, lambda m: m["global"].update({"isac:schema": 2}))
    with pytest.raises(RecordingError, match=r"isac:schema = 2: allowed 1 ... 1"):
        Recording.open(good)


def test_capture_index_out_of_range(good):
    rec = Recording.open(good)
    assert rec.capture(-1).seq == 12
    with pytest.raises(InputError, match=r"capture index = 3: allowed 0 ... 2"):
        rec.capture(3)
    with pytest.raises(InputError, match=r"start \+ count = 240 \+ 10: allowed <= 243 samples"):
        rec.read(240, 10)


# ---- writer checks ---------------------------------------------------------------------
@pytest.mark.parametrize("field, change, message", [
    ("sample_rate_hz", {"sample_rate_hz": 2 * FS_HZ}, r"sample_rate_hz = 1\.536e\+07 Hz but the recording has "
                                                      r"sample_rate_hz = 7\.68e\+06 Hz"),
    ("center_freq_hz", {"center_freq_hz": 2.4e9}, r"center_freq_hz = 2\.4e\+09 Hz but the recording has "
                                                  r"center_freq_hz = 3\.5e\+09 Hz"),
    ("num_channels", {"iq": np.zeros((3, 8), np.complex64)}, r"num_channels = 3 but the recording has "
                                                             r"num_channels = 2"),
])
def test_append_rejects_a_different_capture(tmp_path, field, change, message):
    fields = {"iq": np.zeros((2, 8), np.complex64), "sample_rate_hz": FS_HZ, "center_freq_hz": FC_HZ, **change}
    with RecordingWriter(tmp_path / "r", sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=2) as w:
        with pytest.raises(RecordingError, match=message):
            w.append(Capture(**fields))
        assert w.num_captures == 0 and w.num_samples == 0


def test_append_rejects_bad_samples_and_metadata(tmp_path, frame):
    with RecordingWriter(tmp_path / "r", sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=1,
                         datatype="ci16_le", frame=frame) as w:
        with pytest.raises(RecordingError, match=r"samples\[0, 2\] = \(?nan.*allowed finite samples"):
            w.append(Capture(np.array([0, 0, np.nan], np.complex64), FS_HZ, FC_HZ))
        with pytest.raises(RecordingError, match=r"reaches 1\.5: allowed <= 1\.0 \(full scale\) for ci16_le"):
            w.append(Capture(np.array([0.1, 1.5j], np.complex64), FS_HZ, FC_HZ))
        with pytest.raises(RecordingError, match=r"reaches 1\.75: allowed <= 1\.0 \(full scale\) for ci16_le"):
            w.append(Capture(np.array([0.1, -1.75 + 0.5j], np.complex64), FS_HZ, FC_HZ))     # the negative side
        for bad, shown in ((np.inf, "inf"), (-np.inf, "-inf"), (complex(0.5, np.nan), "nan")):
            with pytest.raises(RecordingError, match=rf"samples\[0, 1\] = \(?.*{shown}.*allowed finite samples"):
                w.append(Capture(np.array([0.25, bad], np.complex64), FS_HZ, FC_HZ))
        assert w.num_captures == 0
        with pytest.raises(RecordingError, match=r"metadata\['obj'\] = <object .* of type object: allowed JSON values"):
            w.append(Capture(np.zeros(4, np.complex64), FS_HZ, FC_HZ, metadata={"obj": object()}))
        with pytest.raises(RecordingError, match=r"truth\['snr_db'\] = nan: allowed finite numbers"):
            w.append(Capture(np.zeros(4, np.complex64), FS_HZ, FC_HZ), truth={"snr_db": float("nan")})
        with pytest.raises(RecordingError, match=r"frame = .* differs from the recording's frame"):
            w.append(Capture(np.zeros(4, np.complex64), FS_HZ, FC_HZ, frame=FrameConfig()))
        w.append(Capture(np.zeros(4, np.complex64), FS_HZ, FC_HZ))
    assert Recording.open(tmp_path / "r").num_samples == 4               # only the good capture was written
    with RecordingWriter(tmp_path / "full", sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=1,
                         datatype="ci16_le") as w:
        w.append(Capture(np.array([-1.0, 1.0j, 0.5 - 1.0j], np.complex64), FS_HZ, FC_HZ))    # full scale itself
    assert Recording.open(tmp_path / "full").num_samples == 3


def test_writer_arguments(tmp_path):
    with pytest.raises(InputError, match=r"datatype: core:datatype = 'cu12': not a SigMF complex datatype; "
                                         r"allowed cf32_le"):
        RecordingWriter(tmp_path / "r", sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=1, datatype="cu12")
    with pytest.raises(InputError, match=r"sample_rate_hz = -1\.0 Hz: allowed a finite number > 0 Hz"):
        RecordingWriter(tmp_path / "r", sample_rate_hz=-1.0, center_freq_hz=FC_HZ, num_channels=1)
    with pytest.raises(InputError, match=r"num_channels = 0: allowed an integer >= 1"):
        RecordingWriter(tmp_path / "r", sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=0)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_directory(tmp_path):
    (tmp_path / "afile").write_text("")
    for parent in (tmp_path / "missing" / "dir", tmp_path / "afile"):
        with pytest.raises(RecordingError, match=rf"{parent}: cannot write the recording there"):
            RecordingWriter(parent / "r", sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=1)


def test_append_after_close(tmp_path):
    w = RecordingWriter(tmp_path / "r", sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=1)
    w.close()
    w.close()
    with pytest.raises(RecordingError, match="append after close"):
        w.append(Capture(np.zeros(4, np.complex64), FS_HZ, FC_HZ))


# ---- atomic writes ---------------------------------------------------------------------
def test_exception_inside_with_leaves_no_files(tmp_path, rng, frame):
    with pytest.raises(KeyboardInterrupt):
        with RecordingWriter(tmp_path / "r", sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=2) as w:
            w.append(make_captures(rng, frame, num=1)[0])
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_unfinished_write_has_no_meta(tmp_path, rng, frame):
    w = RecordingWriter(tmp_path / "r", sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=2)
    w.append(make_captures(rng, frame, num=1)[0])                     # as if the process died now
    assert not w.meta_path.exists() and not w.data_path.exists()
    assert [p.name.startswith(".r.sigmf-data.") for p in tmp_path.iterdir()] == [True]
    with pytest.raises(RecordingError, match="r.sigmf-meta: metadata file not found"):
        Recording.open(tmp_path / "r")
    w.abort()
    assert list(tmp_path.iterdir()) == []


def test_failed_write_does_not_clobber_an_existing_recording(good, rng, frame):
    before = {p.name: p.read_bytes() for p in good.parent.iterdir()}
    with pytest.raises(RecordingError, match="already exists; pass overwrite=True"):
        RecordingWriter(good, sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=2)
    with pytest.raises(RuntimeError, match="boom"):
        with RecordingWriter(good, sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=2, overwrite=True) as w:
            w.append(make_captures(rng, frame, num=1)[0])
            raise RuntimeError("boom")
    assert {p.name: p.read_bytes() for p in good.parent.iterdir()} == before
    assert Recording.open(good, verify_checksum=True).num_captures == 3
    write(good, make_captures(rng, frame, num=1), overwrite=True)          # a successful overwrite replaces it
    assert Recording.open(good, verify_checksum=True).num_captures == 1


# ---- describe --------------------------------------------------------------------------
def test_describe(tmp_path, rng, frame):
    captures = make_captures(rng, frame, num=23, channels=2)
    write(tmp_path / "run", captures, node={"id": "bs0", "role": "bs"}, radio={"kind": "pluto", "uri": "ip:pluto"},
          description="walk test")
    text = describe(tmp_path / "run.sigmf-data")
    for part in ("run.sigmf-meta + run.sigmf-data", "cf32_le, 2 channel(s), 7.68 Msps, centre 3.5 GHz",
                 "23 (isac: annotations)", "walk test", "mu=1 (30 kHz), N_RB=20, FFT 256, 28 symbols, normal CP",
                 "id=bs0 role=bs", "kind=pluto uri=ip:pluto", "t0 r=50.00 m v=-3.50 m/s; t1 r=120.25 m v=7.00 m/s",
                 "snr_db: 12.50", "... 3 more captures"):
        assert part in text
    lines = text.splitlines()
    assert sum(line.strip().startswith(tuple("0123456789")) for line in lines) == 20
    assert "    19     29     0.519000 bs0" in text
    edit_meta(tmp_path / "run", lambda m: m["global"].pop("core:sample_rate"))
    with pytest.raises(RecordingError, match="core:sample_rate is missing"):
        describe(tmp_path / "run")


def test_describe_foreign(tmp_path):
    meta = sigmf.fromarray(np.zeros(100, np.complex64))
    meta.sample_rate = 1e6
    meta.tofile(tmp_path / "f")
    text = describe(tmp_path / "f")
    assert "1 (foreign file), 100 samples per channel, 0.1 ms" in text and "frame       -" in text


def test_each_capture_segment_carries_the_hosts_utc_time_of_its_first_sample(tmp_path):
    """A radio stamps its captures with the host's UTC time (``host_utc``); a recording writes it as the segment's
    SigMF ``core:datetime``, which the sigmf package reads; the recording's own times stay the node's t0_s."""
    import datetime

    from sdr_isac import config, radio
    from sdr_isac.capture import HOST_UTC
    from sdr_isac.waveform import IsacFrame

    cfg = config.loads('[frame]\nnum_rb = 4\n[scene]\nseed = 1\n[[scene.nodes]]\nid = "bs0"\n')
    frame_ = IsacFrame(cfg.frame)
    before = datetime.datetime.now(datetime.UTC)
    with radio.open_radio(cfg) as r:
        r.tx(frame_.samples())
        caps = [r.rx(frame_.num_samples) for _ in range(2)]
    after = datetime.datetime.now(datetime.UTC)
    stamps = [datetime.datetime.strptime(c.metadata[HOST_UTC], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)
              for c in caps]
    length = datetime.timedelta(seconds=frame_.num_samples / frame_.sample_rate_hz)
    assert before - length <= stamps[0] <= stamps[1] <= after
    bad = caps[1].with_fields(metadata={**caps[1].metadata, HOST_UTC: "yesterday"})   # a node's bad clock text
    path = tmp_path / "r"
    write(path, [caps[0], bad], center_freq_hz=caps[0].center_freq_hz, sample_rate_hz=caps[0].sample_rate_hz,
          num_channels=1)
    segments = sigmf.sigmffile.fromfile(str(path) + ".sigmf-meta").get_captures()
    assert segments[0]["core:datetime"] == caps[0].metadata[HOST_UTC]
    assert "core:datetime" not in segments[1]                      # not SigMF's format: left out, not refused
    with open_recording(path) as rec:
        assert [rec.capture_info(i)["t0_s"] for i in range(2)] == [caps[0].t0_s, caps[1].t0_s]
