"""A human summary of a recording, for ``sdr-isac info``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdr_isac.config import FrameConfig
from sdr_isac.recording._format import check_int
from sdr_isac.recording.reader import Recording

__all__ = ["describe"]

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
    """A human summary of a recording, validating it on the way.

    The recording is opened as every reader opens it (every metadata field
    validated, ``core:sha512`` verified when present), and then every
    capture is read, as ``sdr-isac process`` and the replay radio read them:
    a recording that :func:`describe` accepts can be read; one that cannot
    be read raises here with the reason.  This reads the whole data file
    (twice: once for the checksum).

    Parameters
    ----------
    path : str or Path
        Base name, ``.sigmf-meta`` or ``.sigmf-data`` path.
    max_captures : int
        Captures listed one per line (>= 0); the rest are counted in a
        final ``...`` line.
    allow_outside : bool
        Allow a data file outside the recording's folder (see
        :meth:`Recording.open`).

    Returns
    -------
    str
        Lines: files, samples (datatype, channels, rate, centre frequency),
        captures and duration, description, frame, node, radio, then one
        line per capture (seq, t0_s, node, samples, frame offset, truth).

    Raises
    ------
    RecordingError
        The recording does not open (see :meth:`Recording.open`), or a
        capture cannot be read (NaN or infinite samples).
    """
    limit = check_int("max_captures", max_captures, 0)
    with Recording.open(path, verify_checksum=True, allow_outside=allow_outside) as rec:
        for i in range(rec.num_captures):                     # read each capture as process and replay do
            rec.capture(i)
        data_bytes = rec.data_path.stat().st_size
        lines = [
            f"recording   {rec.meta_path.name} + {rec.data_path.name} ({_bytes(data_bytes)}) in "
            f"{rec.meta_path.parent}",
            f"samples     {rec.datatype}, {rec.num_channels} channel(s), {_si(rec.sample_rate_hz, 'sps')}, "
            f"centre {_si(rec.center_freq_hz, 'Hz')}",
            f"captures    {rec.num_captures} ({'isac: annotations' if rec.is_isac else 'foreign file'}), "
            f"{rec.num_samples} samples per channel, {rec.duration_s * 1e3:.4g} ms",
            f"description {rec.description or '-'}",
            f"frame       {frame_line(rec.frame)}",
            f"node        {_ids(rec.node)}",
            f"radio       {_ids(rec.radio)}",
        ]
        if rec.num_captures:
            lines.append(f"  {'#':>4} {'seq':>6} {'t0_s':>12} {'node':<8} {'samples':>9} {'offset':>7}  truth")
        for i in range(min(limit, rec.num_captures)):
            info = rec.capture_info(i)
            lines.append(f"  {i:>4} {info['seq']:>6} {info['t0_s']:>12.6f} {info['node_id']:<8} "
                         f"{info['sample_count']:>9} {info['frame_offset']:>7}  {truth_text(rec.truth(i))}")
        if rec.num_captures > limit:
            lines.append(f"  ... {rec.num_captures - limit} more captures")
    return "\n".join(lines)

