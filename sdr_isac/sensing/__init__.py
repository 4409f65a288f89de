"""Single-node sensing: CSI, range-Doppler map, CFAR, off-grid estimation, angle, sparse recovery, CRB.

The entry point is :func:`process`; the typical program::

    from sdr_isac import config, radio, sensing
    from sdr_isac.waveform import IsacFrame

    cfg = config.load("hw_configs/sim_single_bs.toml")
    frame = IsacFrame(cfg.frame)
    with radio.open_radio(cfg) as r:
        r.tx(frame.samples(), cyclic=True)
        capture = r.rx(frame.num_samples)
    result = sensing.process(capture, frame, cfg.sensing)
    print(result.detections)          # range_m, velocity_mps, angle_rad, snr_db

Many frames at once (maps, CA-CFAR and peak search, on the CPU or with ``sensing.backend = "cupy"`` on a
GPU): :func:`sdr_isac.sensing.batch.sense_batch`; the array namespace is :mod:`sdr_isac.sensing.backend`.
"""

from sdr_isac.sensing.csi import ChannelEstimate, channel_matrix, known_symbols
from sdr_isac.sensing.detection import Detection
from sdr_isac.sensing.pipeline import SensingResult, process
from sdr_isac.sensing.rdmap import RangeDopplerMap, range_doppler_map

__all__ = ["ChannelEstimate", "Detection", "RangeDopplerMap", "SensingResult", "channel_matrix", "known_symbols",
           "process", "range_doppler_map"]
