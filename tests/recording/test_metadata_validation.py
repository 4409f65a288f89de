"""Every metadata field validated when a recording opens; ``sdr-isac info`` accepts only what reads.

One test per class of defect of issue 13 (items 3-6): exceptions outside the error family, values coerced
silently, accepted files that cannot be read, a wrong checksum, a data file outside the folder.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from sdr_isac.capture import Capture
from sdr_isac.cli import main
from sdr_isac.errors import InputError, RecordingError
from sdr_isac.recording import Recording, RecordingWriter, describe

FS_HZ = 1e6
FC_HZ = 2.4e9


@pytest.fixture
def rec(tmp_path) -> Path:
    """A two-capture, two-channel recording ``tmp/sub/r`` with node, radio and truth."""
    base = tmp_path / "sub" / "r"
    base.parent.mkdir()
    with RecordingWriter(base, sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=2,
                         node={"id": "bs0"}, radio={"kind": "sim"}) as w:
        for k in range(2):
            w.append(Capture(np.full((2, 8), k + 1j, np.complex64), FS_HZ, FC_HZ, t0_s=0.5 * k, seq=10 + k,
                             node_id="bs0", frame_offset=k), truth={"targets": [{"id": "t0", "range_m": 5.0}]})
    return base


def edit(base: Path, change) -> None:
    path = base.with_name(base.name + ".sigmf-meta")
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata, allow_nan=True))


def ann(m, k=0):
    return m["annotations"][k]


def glob(m):
    return m["global"]


def refused(base: Path, message: str, capsys) -> None:
    """Refused by open() and by describe(), and ``sdr-isac info`` says so in one line with exit 2."""
    with pytest.raises(RecordingError, match=message):
        Recording.open(base)
    with pytest.raises(RecordingError, match=message):
        describe(base)
    capsys.readouterr()
    assert main(["info", str(base)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


# ---- item 3: no exception outside the family ---------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda m: ann(m).update({"isac:seq": math.inf}), r"r\.sigmf-meta: annotations\[0\]\.isac:seq = inf: allowed "
                                                      r"finite numbers \(JSON has no NaN or Infinity"),
    (lambda m: ann(m).update({"isac:frame_offset": -math.inf}), r"annotations\[0\]\.isac:frame_offset = -inf"),
    (lambda m: ann(m, 1).update({"isac:t0_s": 1e999}), r"annotations\[1\]\.isac:t0_s = inf"),
    (lambda m: glob(m).update({"core:num_channels": None}), r"at global/core:num_channels: None is not of type "
                                                            r"'integer'; allowed metadata following the SigMF"),
    (lambda m: glob(m).update({"isac:node": 5}), r"isac:node = 5: allowed a JSON object or null; write the node"),
    (lambda m: glob(m).update({"isac:node": [1]}), r"isac:node = \[1\]: allowed a JSON object or null"),
    (lambda m: glob(m).update({"isac:radio": "sim"}), r"isac:radio = 'sim': allowed a JSON object or null"),
    (lambda m: glob(m).update({"isac:node": {"id": 7}}), r"isac:node\.id = 7: allowed a string"),
    (lambda m: ann(m).update({"isac:metadata": []}), r"annotations\[0\]\.isac:metadata = \[\]: allowed a JSON object"),
    (lambda m: ann(m).update({"isac:seq": 10**30}), r"annotations\[0\]\.isac:seq = 1000000000000000000000000000000: "
                                                    r"allowed an integer 0 \.\.\. 9223372036854775807"),
    (lambda m: m.update({"captures": {}}), r"captures = \{\}: allowed a list of objects"),
    (lambda m: m.update({"annotations": [1]}), r"annotations\[0\] = 1: allowed a JSON object"),
    (lambda m: m.pop("captures"), r"captures = None: allowed a list of objects"),
], ids=["seq-inf", "offset-minus-inf", "t0-1e999", "channels-null", "node-int", "node-list", "radio-str",
        "node-id-int", "metadata-list", "seq-huge", "captures-object", "annotation-int", "captures-missing"])
def test_malformed_fields_raise_recording_error_naming_the_field(rec, capsys, change, message):
    edit(rec, change)
    refused(rec, message, capsys)


def test_integers_too_long_to_parse_and_deep_nesting_are_clean_errors(rec, capsys):
    meta = rec.with_name("r.sigmf-meta")
    text = meta.read_text()
    meta.write_text(text.replace('"isac:seq": 10', '"isac:seq": ' + "9" * 5000, 1))
    refused(rec, r"the metadata cannot be parsed \(Exceeds the limit \(4300 digits\)", capsys)
    meta.write_text(text.replace('"isac:metadata": {}', '"isac:metadata": ' + "[" * 100_000 + "]" * 100_000, 1))
    refused(rec, r"the metadata cannot be parsed", capsys)


# ---- item 4: types exactly, finite and in range; accepted means readable ------------------------------
@pytest.mark.parametrize("value", [2.5, True, False, "12", None, [], -1])
def test_seq_is_an_integer_exactly(rec, capsys, value):
    edit(rec, lambda m: ann(m).update({"isac:seq": value}))
    refused(rec, rf"annotations\[0\]\.isac:seq = {repr(value).replace('[', '.').replace(']', '.')}: allowed an "
                 r"integer 0 \.\.\. 9223372036854775807; fix that annotation", capsys)


@pytest.mark.parametrize("key", ["core:sample_count", "core:sample_start", "isac:frame_offset"])
@pytest.mark.parametrize("value", [2.5, True, "12"])
def test_counts_and_offsets_are_integers_exactly(rec, key, value):
    edit(rec, lambda m: ann(m).update({key: value}))
    with pytest.raises(RecordingError, match=r"annotations/0/core:|annotations\[0\]\.isac:frame_offset"):
        Recording.open(rec)


def test_an_integral_float_is_an_integer_as_in_json_schema(rec):
    edit(rec, lambda m: ann(m).update({"isac:seq": 12.0, "isac:frame_offset": 0.0}))
    with Recording.open(rec) as r:
        capture = r.capture(0)
    assert capture.seq == 12 and type(capture.seq) is int and type(capture.frame_offset) is int


@pytest.mark.parametrize("change, message", [
    (lambda m: glob(m).update({"core:sample_rate": math.nan}), r"core:sample_rate = nan: allowed finite numbers"),
    (lambda m: glob(m).update({"core:sample_rate": "1e6"}), r"at global/core:sample_rate: '1e6' is not of type"),
    (lambda m: glob(m).update({"core:sample_rate": True}), r"at global/core:sample_rate: True is not of type 'number'"),
    (lambda m: glob(m).update({"core:sample_rate": 2e12}), r"at global/core:sample_rate: 2000000000000\.0 is greater"),
    (lambda m: m["captures"][1].update({"core:frequency": -1.0}), r"captures\[1\]\.core:frequency = -1\.0 Hz: "
                                                                  r"allowed a number >= 0 Hz and <= 1e\+12 Hz"),
    (lambda m: m["captures"][0].update({"core:frequency": math.nan}), r"captures\[0\]\.core:frequency = nan"),
    (lambda m: m["captures"][1].update({"core:frequency": 5e9, "core:sample_start": 4}),   # a retune inside seq 10
     r"annotations\[0\] \(isac:seq 10\) covers samples 0 \.\.\. 7, across a retune at sample 4 \(captures\[0\]\."
     r"core:frequency = 2\.4e\+09 Hz, captures\[1\]\.core:frequency = 5e\+09 Hz\): allowed a capture inside one "
     r"centre frequency"),
    (lambda m: ann(m).update({"isac:t0_s": 1e13}), r"annotations\[0\]\.isac:t0_s = 10000000000000\.0 s: allowed a "
                                                   r"number >= -1e\+12 s and <= 1e\+12 s"),
    (lambda m: ann(m).update({"isac:t0_s": None}), r"annotations\[0\]\.isac:t0_s = None: allowed a number"),
    (lambda m: ann(m).update({"isac:node_id": 3}), r"annotations\[0\]\.isac:node_id = 3: allowed a string"),
    (lambda m: glob(m).update({"core:num_channels": 65537}), r"core:num_channels = 65537: allowed an integer 1 "
                                                             r"\.\.\. 65536"),
    (lambda m: glob(m).update({"core:num_channels": 3}), r"allowed a multiple of 24 bytes \(3 channel\(s\)"),
    (lambda m: glob(m).update({"isac:schema": 2}), r"isac:schema = 2: allowed 1 \.\.\. 1; the file comes from a "
                                                   r"newer sdr_isac"),
    (lambda m: glob(m).update({"isac:schema": "1"}), r"isac:schema = '1': allowed an integer 1 \.\.\. 1"),
    (lambda m: glob(m).update({"core:metadata_only": 1}), r"at global/core:metadata_only: 1 is not of type"),
    (lambda m: ann(m).update({"isac:sequence": 1}), r"annotations\[0\]\.isac:sequence is not a key of the isac: "
                                                    r"namespace \(schema 1\): allowed isac:seq, .*; did you mean "
                                                    r"'isac:seq'\?"),
    (lambda m: glob(m).update({"isac:nodes": {}}), r"isac:nodes is not a key of the isac: namespace.*did you mean "
                                                   r"'isac:node'\?"),
    (lambda m: ann(m).pop("isac:seq"), r"annotations\[0\]\.isac:seq is missing: allowed capture annotations"),
    (lambda m: m.update({"annotations": []}), r"holds 16 samples per channel but r\.sigmf-meta has no capture "
                                              r"annotation"),
    (lambda m: m["annotations"].reverse(), r"annotations\[1\]\.core:sample_start = 0: allowed >= annotations\[0\]"),
    (lambda m: glob(m).update({"isac:frame": 3}), r"isac:frame = 3: allowed a JSON object or null"),
], ids=["rate-nan", "rate-str", "rate-bool", "rate-huge", "freq-negative", "freq-nan", "capture-across-retune", "t0-huge",
        "t0-null", "node-id-int", "channels-many", "channels-wrong", "schema-newer", "schema-str",
        "metadata-only-int", "unknown-isac-key", "unknown-global-key", "seq-missing", "no-annotations",
        "unsorted", "frame-int"])
def test_values_out_of_type_or_range_are_refused(rec, capsys, change, message):
    edit(rec, change)
    refused(rec, message, capsys)


def test_accepted_means_every_capture_reads(rec, capsys):
    assert main(["info", str(rec)]) == 0
    assert "captures    2 (isac: annotations)" in capsys.readouterr().out
    mm = np.memmap(rec.with_name("r.sigmf-data"), dtype="<c8", mode="r+")
    mm[5] = np.nan                                        # samples the metadata cannot know of
    mm.flush()
    del mm
    edit(rec, lambda m: glob(m).pop("core:sha512"))       # so that only reading the capture can find it
    Recording.open(rec).close()                           # opens: the metadata is fine
    message = r"capture 0: samples\[1, 2\] \(file sample 2\) = \(?nan.*allowed finite I/Q values"
    with pytest.raises(RecordingError, match=message):   # but info reads every capture, as process does
        describe(rec)
    assert main(["info", str(rec)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_null_node_and_radio_are_empty_and_foreign_files_still_open(rec):
    edit(rec, lambda m: glob(m).update({"isac:node": None, "isac:radio": None}))
    with Recording.open(rec) as r:
        assert r.node == {} and r.radio == {} and r.capture(1).node_id == "bs0"


# ---- item 5: the checksum --------------------------------------------------------------------------
def test_a_wrong_checksum_is_refused_by_default_and_by_info(rec, capsys):
    edit(rec, lambda m: glob(m).update({"core:sha512": "ab" * 64}))
    refused(rec, r"r\.sigmf-data: core:sha512 = abababababababab\.\.\. but the data file hashes to [0-9a-f]{16}"
                 r"\.\.\.: allowed matching checksums", capsys)
    with Recording.open(rec, verify_checksum=False) as r:  # the documented opt-out
        assert r.num_captures == 2


@pytest.mark.parametrize("value", ["0" * 127, "0" * 129, "g" * 128, 12])
def test_a_malformed_checksum_is_refused(rec, value):
    edit(rec, lambda m: glob(m).update({"core:sha512": value}))
    with pytest.raises(RecordingError, match=r"core:sha512|global/core:sha512"):
        Recording.open(rec, verify_checksum=False)


def test_an_upper_case_checksum_matches(rec):
    edit(rec, lambda m: glob(m).update({"core:sha512": glob(m)["core:sha512"].upper()}))
    Recording.open(rec).close()


# ---- item 6: the data file stays in the recording's folder ------------------------------------------
def test_dataset_outside_the_folder_is_refused(rec, capsys):
    outside = rec.parent.parent / "secret.sigmf-data"
    shutil.copyfile(rec.with_name("r.sigmf-data"), outside)
    edit(rec, lambda m: glob(m).update({"core:dataset": "../secret.sigmf-data"}))
    refused(rec, r"core:dataset = '\.\./secret\.sigmf-data' resolves to \S+/secret\.sigmf-data, outside the "
                 r"recording's folder \S+/sub: allowed a data file inside that folder; .*allow_outside=True", capsys)
    edit(rec, lambda m: glob(m).update({"core:dataset": "../../../../../../../../etc/hostname"}))
    with pytest.raises(RecordingError, match=r"resolves to /etc/hostname, outside"):
        Recording.open(rec)
    edit(rec, lambda m: glob(m).update({"core:dataset": "../secret.sigmf-data"}))
    with Recording.open(rec, allow_outside=True) as r:     # the explicit opt-in
        assert r.num_captures == 2
    capsys.readouterr()
    assert main(["info", "--allow-outside", str(rec)]) == 0


def test_absolute_dataset_and_the_meta_itself_are_refused(rec):
    edit(rec, lambda m: glob(m).update({"core:dataset": "/etc/hostname"}))
    with pytest.raises(RecordingError, match=r"global/core:dataset: '/etc/hostname' does not match"):
        Recording.open(rec)
    edit(rec, lambda m: glob(m).update({"core:dataset": "r.sigmf-meta"}))
    with pytest.raises(RecordingError, match=r"core:dataset = 'r\.sigmf-meta' is the metadata file itself"):
        Recording.open(rec, verify_checksum=False)


def test_a_symbolic_link_out_of_the_folder_is_refused(rec):
    data = rec.with_name("r.sigmf-data")
    outside = rec.parent.parent / "elsewhere.sigmf-data"
    data.rename(outside)
    data.symlink_to(outside)
    with pytest.raises(RecordingError, match=r"the data file r\.sigmf-data resolves to \S+/elsewhere\.sigmf-data, "
                                             r"outside the recording's folder"):
        Recording.open(rec)
    assert Recording.open(rec, allow_outside=True).num_captures == 2
    data.unlink()
    data.symlink_to("/etc/hostname")
    with pytest.raises(RecordingError, match=r"resolves to /etc/hostname, outside"):
        Recording.open(rec)


def test_a_dataset_inside_the_folder_is_read(rec):
    rec.with_name("r.sigmf-data").rename(rec.with_name("samples.bin"))
    edit(rec, lambda m: glob(m).update({"core:dataset": "samples.bin"}))
    with Recording.open(rec) as r:
        assert r.data_path.name == "samples.bin" and r.capture(1).seq == 11


# ---- the writer writes only what the reader opens ------------------------------------------------------
def test_the_writer_refuses_what_the_reader_would(tmp_path):
    with RecordingWriter(tmp_path / "w", sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=1) as w:
        with pytest.raises(RecordingError, match=r"annotations\[0\]\.isac:seq = 2\.5: allowed an integer"):
            w.append(Capture(np.zeros(4, np.complex64), FS_HZ, FC_HZ, seq=2.5))      # type: ignore[arg-type]
        with pytest.raises(RecordingError, match=r"annotations\[0\]\.isac:t0_s = 10000000000000\.0 s: allowed a"):
            w.append(Capture(np.zeros(4, np.complex64), FS_HZ, FC_HZ, t0_s=1e13))
        w.append(Capture(np.zeros(4, np.complex64), FS_HZ, FC_HZ, seq=np.int64(3)))  # type: ignore[arg-type]
    assert Recording.open(tmp_path / "w").capture(0).seq == 3
    with pytest.raises(InputError, match=r"node\['id'\] = 7: allowed a string"):
        RecordingWriter(tmp_path / "x", sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=1, node={"id": 7})
    with pytest.raises(InputError, match=r"radio is a list: allowed a dict"):
        RecordingWriter(tmp_path / "x", sample_rate_hz=FS_HZ, center_freq_hz=FC_HZ, num_channels=1, radio=[1])
    with pytest.raises(InputError, match=r"center_freq_hz = 2000000000000\.0 Hz: allowed a finite number >= 0 Hz and "
                                         r"<= 1e\+12 Hz"):
        RecordingWriter(tmp_path / "x", sample_rate_hz=FS_HZ, center_freq_hz=2e12, num_channels=1)
