"""Every complex SigMF datatype read into complex64, each checked against a file built byte by byte with numpy.

The expected values are computed here from the SigMF specification's definitions (``c`` complex, ``f``/``i``/``u``
float, signed, unsigned, ``_le``/``_be`` byte order) and the scaling conventions: signed integers by 2**-(bits-1),
unsigned (offset binary) less (2**bits - 1)/2 and by 2/(2**bits - 1), which for cu8 is RTL-SDR's
``(v - 127.5) / 127.5``.  The files are not written by sdr_isac's writer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sdr_isac.capture import Capture
from sdr_isac.errors import InputError, RecordingError
from sdr_isac.recording import DATATYPES, Recording, RecordingWriter

FS_HZ = 1e6

# name -> (numpy dtype of one stored component, kind)
TYPES = {
    "cf32_le": ("<f4", "f"), "cf32_be": (">f4", "f"), "cf64_le": ("<f8", "f"), "cf64_be": (">f8", "f"),
    "ci32_le": ("<i4", "i"), "ci32_be": (">i4", "i"), "ci16_le": ("<i2", "i"), "ci16_be": (">i2", "i"),
    "ci8": ("i1", "i"), "cu32_le": ("<u4", "u"), "cu32_be": (">u4", "u"), "cu16_le": ("<u2", "u"),
    "cu16_be": (">u2", "u"), "cu8": ("u1", "u"),
}


def write_foreign(folder: Path, datatype: str, components: np.ndarray, channels: int = 1) -> Path:
    """``components`` shape (n, channels, 2) (I, Q) as stored; metadata written as plain JSON."""
    (folder / "f.sigmf-data").write_bytes(components.tobytes())
    meta = {"global": {"core:datatype": datatype, "core:sample_rate": FS_HZ, "core:version": "1.2.0",
                       "core:num_channels": channels},
            "captures": [{"core:sample_start": 0, "core:frequency": 1e9}], "annotations": []}
    (folder / "f.sigmf-meta").write_text(json.dumps(meta))
    return folder / "f"


def expected(components: np.ndarray, kind: str, bits: int) -> np.ndarray:
    """complex128 shape (channels, n), from the definitions (independent of sdr_isac)."""
    values = components.astype(np.float64)
    if kind == "i":
        values = values / 2.0 ** (bits - 1)
    elif kind == "u":
        half = (2.0**bits - 1) / 2
        values = (values - half) / half
    return (values[..., 0] + 1j * values[..., 1]).T


def test_the_table_is_every_complex_sigmf_datatype():
    assert set(DATATYPES) == set(TYPES)


@pytest.mark.parametrize("datatype", sorted(TYPES))
def test_each_datatype_against_bytes_written_with_numpy(tmp_path, datatype):
    disk, kind = TYPES[datatype]
    dt = np.dtype(disk)
    bits = 8 * dt.itemsize
    rng = np.random.default_rng(11)
    n, channels = 50, 2
    if kind == "f":
        values = rng.standard_normal((n, channels, 2)) * 3.0
    else:
        info = np.iinfo(dt)
        values = rng.integers(info.min, info.max, size=(n, channels, 2), endpoint=True)
        values[0, 0] = (info.min, info.max)                       # both ends of the range
    components = values.astype(dt)
    base = write_foreign(tmp_path, datatype, components, channels)
    with Recording.open(base) as rec:
        iq = rec.capture(0).iq
    assert iq.dtype == np.complex64 and iq.shape == (channels, n)
    np.testing.assert_allclose(iq, expected(components, kind, bits), rtol=1e-6, atol=1e-7)
    if dt.itemsize > 1:                                           # the byte order matters: the other one differs
        swapped = components.view(dt.newbyteorder())
        assert not np.allclose(expected(swapped, kind, bits), iq)


def test_cu8_is_rtl_sdr_offset_binary(tmp_path):
    raw = np.array([[[0, 255]], [[127, 128]], [[255, 0]]], dtype=np.uint8)      # (n, 1, IQ)
    iq = Recording.open(write_foreign(tmp_path, "cu8", raw)).capture(0).iq[0]
    np.testing.assert_allclose(iq, [-1 + 1j, (-0.5 + 0.5j) / 127.5, 1 - 1j], rtol=0, atol=1e-7)


def test_big_endian_ci16_reads_the_most_significant_byte_first(tmp_path):
    raw = np.array([[[0x01, 0x02]]], dtype=">i2")               # bytes 00 01 00 02: 1 and 2, not 256 and 512
    assert raw.tobytes() == b"\x00\x01\x00\x02"
    iq = Recording.open(write_foreign(tmp_path, "ci16_be", raw)).capture(0).iq
    assert iq[0, 0] == pytest.approx((1 + 2j) / 32768)


def test_8_bit_types_with_a_byte_order_suffix_open(tmp_path):
    raw = np.array([[[1, 2]]], dtype=np.uint8)
    for name in ("cu8_le", "cu8_be"):                            # the schema allows a suffix; one byte has no order
        rec = Recording.open(write_foreign(tmp_path, name, raw))
        assert rec.datatype == "cu8" and rec.capture(0).iq[0, 0] == pytest.approx((1 + 2j - 127.5 * (1 + 1j)) / 127.5)


@pytest.mark.parametrize("datatype", ["rf32_le", "ri16_be", "ru8"])
def test_real_datatypes_are_refused_without_advising_a_relabel(tmp_path, datatype):
    base = write_foreign(tmp_path, datatype, np.zeros((4, 1, 2), np.uint8))
    with pytest.raises(RecordingError, match=rf"core:datatype = '{datatype}': real-valued samples; allowed complex "
                                             r"\(I/Q\) samples: .*convert the real signal to I/Q") as err:
        Recording.open(base)
    text = str(err.value).lower()
    assert "set the datatype" not in text and "relabel" not in text and "change core:datatype" not in text


@pytest.mark.parametrize("datatype", sorted(TYPES))
def test_written_and_read_back_within_half_a_step(tmp_path, datatype):
    rng = np.random.default_rng(3)
    iq = (rng.uniform(-1, 1, (2, 40)) + 1j * rng.uniform(-1, 1, (2, 40))).astype(np.complex64)
    iq[0, :2] = [1 + 1j, -1 - 1j]                               # full scale both ways
    with RecordingWriter(tmp_path / "w", sample_rate_hz=FS_HZ, center_freq_hz=1e9, num_channels=2,
                         datatype=datatype) as w:
        w.append(Capture(iq, FS_HZ, 1e9))
    step = DATATYPES[datatype].scale
    back = Recording.open(tmp_path / "w").capture(0).iq
    tolerance = 1e-6 if step == 1.0 else step        # half a step of rounding, a step where +1.0 clips
    np.testing.assert_allclose(back.real, iq.real, rtol=0, atol=tolerance)
    np.testing.assert_allclose(back.imag, iq.imag, rtol=0, atol=tolerance)
    raw = np.fromfile(tmp_path / "w.sigmf-data", dtype=TYPES[datatype][0])
    if TYPES[datatype][1] == "u":                                # -1.0 is 0, the smallest code; +1.0 the largest
        stored = raw.reshape(40, 2, 2)                           # (n, channel, IQ)
        assert stored[1, 0].tolist() == [0, 0] and stored[0, 0].tolist() == [np.iinfo(stored.dtype).max] * 2


def test_the_writer_refuses_a_real_datatype(tmp_path):
    with pytest.raises(InputError, match=r"core:datatype = 'rf32_le': real-valued samples"):
        RecordingWriter(tmp_path / "w", sample_rate_hz=FS_HZ, center_freq_hz=1e9, num_channels=1,
                        datatype="rf32_le")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_big_endian_float_is_refused_when_read(tmp_path, bad):
    values = np.zeros((6, 1, 2), ">f4")
    values[4, 0, 1] = bad
    with Recording.open(write_foreign(tmp_path, "cf32_be", values)) as rec:
        with pytest.raises(RecordingError, match=r"capture 0: samples\[0, 4\] \(file sample 4\) = .*: allowed finite "
                                                 r"I/Q values"):
            rec.capture(0)


def test_zero_length_data_of_every_type_opens_empty(tmp_path):
    for name, (disk, _) in TYPES.items():
        with Recording.open(write_foreign(tmp_path, name, np.zeros((0, 1, 2), disk))) as rec:
            assert rec.num_captures == 0 and rec.num_samples == 0, name
