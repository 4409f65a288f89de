"""A human summary of a recording, an archive or a collection, for ``sdr-isac info``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdr_isac.config import FrameConfig
from sdr_isac.recording._format import check_int, is_collection
from sdr_isac.recording.collection import open_collection
from sdr_isac.recording.reader import Recording

__all__ = ["describe", "describe_collection"]

_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"))
_ID_KEYS = ("id", "name", "kind", "role", "node_id", "uri")
_LINE_CHARS = 160


def _si(value: float, unit: str) -> str:
    """``30.72 MHz`` style: three significant digits with an SI prefix."""
    for factor, prefix in _PREFIXES:
        if abs(value) >= factor:
            return f"{value / factor:.4g} {prefix}{unit}"
    return f"{value:.4g} {unit}"


def _bytes(n: int) -> str:
    for factor, prefix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= factor:
            return f"{n / factor:.1f} {prefix}"
    return f"{n} B"


def frame_line(frame: FrameConfig | None) -> str:
    """One line: numerology, N_RB, FFT size, symbols, CP, sample rate, signals."""
    if frame is None:
        return "-"
    signals = [name.upper() for name in ("prs", "dmrs", "srs", "trs") if getattr(frame, name) is not None]
    if frame.data.enabled:
        signals.append(f"data {frame.data.modulation}")
    return (f"mu={frame.numerology} ({frame.subcarrier_spacing_hz / 1e3:g} kHz), N_RB={frame.num_rb}, "
            f"FFT {frame.fft_size}, {frame.total_symbols} symbols, {frame.cyclic_prefix} CP, "
            f"{_si(frame.sample_rate_hz, 'sps')}, carrier {_si(frame.carrier_hz, 'Hz')}, "
            f"signals {' + '.join(signals) or 'none'}")


def _ids(info: dict[str, Any]) -> str:
    """``id=bs0 role=bs``: the identifying scalar entries of a node or radio dict."""
    parts = [f"{k}={info[k]}" for k in _ID_KEYS if isinstance(info.get(k), (str, int, float))]
    return " ".join(parts) if parts else ("-" if not info else f"{len(info)} fields")


def _num(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _item(item: Any) -> str:
    """One truth entry: a target as ``t0 r=50.00 m v=3.00 m/s``, else its value."""
    if not isinstance(item, dict):
        return _num(item)
    text = [str(item[k]) for k in ("id", "name") if k in item][:1]
    for key, label, unit in (("range_m", "r", " m"), ("bistatic_range_m", "rb", " m"),
                             ("velocity_mps", "v", " m/s"), ("angle_rad", "az", " rad"), ("snr_db", "snr", " dB")):
        if isinstance(item.get(key), (int, float)):
            text.append(f"{label}={_num(item[key])}{unit}")
    if len(text) <= 1:
        text += [f"{k}={_num(v)}" for k, v in item.items() if k not in ("id", "name")
                 and isinstance(v, (int, float, str))][:3]
    return " ".join(text)


def truth_text(truth: dict[str, Any]) -> str:
    """Compact one-line text of a capture's truth (``targets: t0 r=50.00 m v=3.00 m/s; ...``)."""
    parts = []
    for key, value in truth.items():
        if isinstance(value, list):
            parts.append(f"{key}: " + ("; ".join(_item(v) for v in value) or "none"))
        else:
            parts.append(f"{key}: {_item(value)}")
    text = ", ".join(parts) or "-"
    return text if len(text) <= _LINE_CHARS else text[:_LINE_CHARS - 3] + "..."


def describe(path: str | Path, *, max_captures: int = 20, allow_outside: bool = False) -> str:
    """A human summary of a recording, an archive or a collection, validating it on the way.

    The recording is opened as every reader opens it (every metadata field
    validated, ``core:sha512`` verified when present), and then every
    capture is read, as ``sdr-isac process`` and the replay radio read them:
    a recording that :func:`describe` accepts can be read; one that cannot
    be read raises here with the reason.  This reads the whole data file
    (twice: once for the checksum).  A ``.sigmf-collection`` is described by
    :func:`describe_collection`.

    Parameters
    ----------
    path : str or Path
        Base name, ``.sigmf-meta`` or ``.sigmf-data`` path, an archive
        (``.sigmf``, ``.sigmf.gz``, ``.sigmf.xz``) or a ``.sigmf-collection``.
    max_captures : int
        Captures listed one per line (>= 0); the rest are counted in a
        final ``...`` line.  The same limit applies to the segment and
        annotation lists.
    allow_outside : bool
        Allow a data file outside the recording's folder (see
        :meth:`Recording.open`).

    Returns
    -------
    str
        Lines: files, samples (datatype, channels, rate, centre frequency),
        captures and duration, description, frame, node, radio; the capture
        segments when there are several (sample range and centre frequency
        each); the annotations that are not captures (sample range, label,
        frequency edges); then one line per capture (seq, t0_s, node,
        samples, frame offset, centre frequency after a retune, truth).

    Raises
    ------
    RecordingError
        The recording does not open (see :meth:`Recording.open`), or a
        capture cannot be read (NaN or infinite samples).
    """
    limit = check_int("max_captures", max_captures, 0)
    if is_collection(path):
        return describe_collection(path, max_captures=limit, allow_outside=allow_outside)
    with Recording.open(path, verify_checksum=True, allow_outside=allow_outside) as rec:
        for i in range(rec.num_captures):                     # read each capture as process and replay do
            rec.capture(i)
        return _recording_text(rec, limit)


def _recording_text(rec: Recording, limit: int) -> str:
    if rec.archive_path is not None:
        where = (f"archive     {rec.archive_path.name} ({_bytes(rec.archive_path.stat().st_size)}) in "
                 f"{rec.archive_path.parent}: members {rec.meta_path.relative_to(rec.archive_path)} + "
                 f"{rec.data_path.relative_to(rec.archive_path)} ({_bytes(rec.data_size_bytes)} of samples)")
    else:
        where = (f"recording   {rec.meta_path.name} + {rec.data_path.name} ({_bytes(rec.data_size_bytes)}) in "
                 f"{rec.meta_path.parent}")
    freqs = sorted(set(rec.frequencies_hz))
    centre = _si(rec.center_freq_hz, "Hz") if len(freqs) <= 1 else \
        f"{len(freqs)} frequencies {', '.join(_si(f, 'Hz') for f in freqs[:4])}{' ...' if len(freqs) > 4 else ''}"
    lines = [
        where,
        f"samples     {rec.datatype}, {rec.num_channels} channel(s), {_si(rec.sample_rate_hz, 'sps')}, "
        f"centre {centre}",
        f"captures    {rec.num_captures} ({'isac: annotations' if rec.is_isac else 'foreign file'}), "
        f"{rec.num_samples} samples per channel, {rec.duration_s * 1e3:.4g} ms",
        f"description {rec.description or '-'}",
        f"frame       {frame_line(rec.frame)}",
        f"node        {_ids(rec.node)}",
        f"radio       {_ids(rec.radio)}",
    ]
    lines += _segment_lines(rec, limit) + _annotation_lines(rec, limit)
    retuned = len(freqs) > 1
    if rec.num_captures:
        centre_col = f" {'centre':>10}" if retuned else ""
        lines.append(f"  {'#':>4} {'seq':>6} {'t0_s':>12} {'node':<8} {'samples':>9} {'offset':>7}{centre_col}  truth")
    for i in range(min(limit, rec.num_captures)):
        info = rec.capture_info(i)
        centre_col = f" {_si(info['center_freq_hz'], 'Hz'):>10}" if retuned else ""
        lines.append(f"  {i:>4} {info['seq']:>6} {info['t0_s']:>12.6f} {info['node_id']:<8} "
                     f"{info['sample_count']:>9} {info['frame_offset']:>7}{centre_col}  {truth_text(rec.truth(i))}")
    if rec.num_captures > limit:
        lines.append(f"  ... {rec.num_captures - limit} more captures")
    return "\n".join(lines)


def _segment_lines(rec: Recording, limit: int) -> list[str]:
    """``segment k: samples a ... b, centre f`` for each capture segment, when there are several."""
    segments = rec.capture_segments
    if len(segments) <= 1:
        return []
    lines = [f"segments    {len(segments)} capture segments (SigMF captures)"]
    for seg in segments[:limit]:
        end = seg["sample_start"] + seg["sample_count"] - 1
        lines.append(f"  segment {seg['index']}: samples {seg['sample_start']} ... {end} "
                     f"({seg['sample_count']}), centre {_si(seg['center_freq_hz'], 'Hz')}")
    if len(segments) > limit:
        lines.append(f"  ... {len(segments) - limit} more segments")
    return lines


def _annotation_lines(rec: Recording, limit: int) -> list[str]:
    """``annotation k: samples a ... b, label, edges`` for each annotation that is not a capture."""
    foreign = [(k, a) for k, a in enumerate(rec.annotations)
               if not any(isinstance(key, str) and key.startswith(("isac:", "truth:")) for key in a)]
    if not foreign:
        return []
    lines = [f"annotations {len(foreign)} (not captures)"]
    for k, ann in foreign[:limit]:
        start = ann.get("core:sample_start", 0)
        count = ann.get("core:sample_count")
        span = f"samples {start} ... {start + count - 1}" if isinstance(count, int) and count > 0 else \
            f"from sample {start}"
        parts = [span]
        for key in ("core:label", "core:comment", "core:generator"):
            if isinstance(ann.get(key), str):
                parts.append(f"{key.removeprefix('core:')} {ann[key]!r}")
        low, high = ann.get("core:freq_lower_edge"), ann.get("core:freq_upper_edge")
        if isinstance(low, (int, float)) and isinstance(high, (int, float)):
            parts.append(f"{_si(float(low), 'Hz')} ... {_si(float(high), 'Hz')}")
        text = ", ".join(parts)
        lines.append(f"  annotation {k}: {text if len(text) <= _LINE_CHARS else text[:_LINE_CHARS - 3] + '...'}")
    if len(foreign) > limit:
        lines.append(f"  ... {len(foreign) - limit} more annotations")
    return lines


def describe_collection(path: str | Path, *, max_captures: int = 20, allow_outside: bool = False) -> str:
    """A human summary of a ``.sigmf-collection``: one line per member, then each member described.

    Every member is opened and validated and every capture read (see :func:`describe`).

    Parameters
    ----------
    path : str or Path
        The collection.
    max_captures : int
        As :func:`describe`, per member.
    allow_outside : bool
        Allow members and data files outside the collection's folder.

    Returns
    -------
    str
        A header (file, description, number of members), a table (node id, stream name, captures,
        channels, rate, centre frequency, datatype), then each member's :func:`describe` text indented.

    Raises
    ------
    RecordingError
        The collection or a member does not open, or a capture cannot be read.
    """
    limit = check_int("max_captures", max_captures, 0)
    with open_collection(path, allow_outside=allow_outside) as coll:
        lines = [f"collection  {coll.path.name} in {coll.path.parent}: {len(coll)} recording(s), SigMF "
                 f"{coll.info.get('core:version', '?')}",
                 f"description {coll.description or '-'}",
                 f"  {'#':>4} {'node':<10} {'recording':<20} {'captures':>8} {'ch':>3} {'rate':>11} {'centre':>11} "
                 "datatype"]
        for i, m in enumerate(coll.members):
            rec = m.recording
            lines.append(f"  {i:>4} {m.node_id:<10} {m.name:<20} {rec.num_captures:>8} {rec.num_channels:>3} "
                         f"{_si(rec.sample_rate_hz, 'sps'):>11} {_si(rec.center_freq_hz, 'Hz'):>11} {rec.datatype}")
        for m in coll.members:
            rec = m.recording
            for i in range(rec.num_captures):
                rec.capture(i)
            lines.append(f"member {m.name} (node {m.node_id}):")
            lines += ["  " + line for line in _recording_text(rec, limit).splitlines()]
    return "\n".join(lines)
