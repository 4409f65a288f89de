#!/usr/bin/env python3
"""Make the small SigMF recordings in ``offline_data/`` from the simulated scene, with ground truth.

Deterministic (seeded): running it again writes the same samples.  Each
recording is at most 5 MB and all of them together at most 30 MB.

Usage: python scripts/make_offline_data.py [--out offline_data]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from sdr_isac import config, radio
from sdr_isac.radio.record import record_frames

# A 1024-point, 56-symbol frame at 120 kHz / 24 GHz: 61 504 samples (0.5 ms) per frame.
FRAME = """
[frame]
numerology = 3
num_rb = 66
fft_size = 1024
carrier_hz = 24e9
num_slots = 4
prs = { comb_size = 4, num_symbols = 4, start_symbol = 3 }
dmrs = { additional_positions = 1 }
data = { modulation = "qpsk", seed = 1 }
"""

BS = """
[[scene.nodes]]
id = "bs0"
position_m = [0.0, 0.0, 5.0]
tx_power_dbm = 20.0
antenna_gain_dbi = 10.0
noise_figure_db = 8.0
"""

RECORDINGS: dict[str, tuple[str, str, int]] = {
    # name: (description, scene and radio TOML, frames)
    "single_target": ("one car at 35 m approaching at 10 m/s", BS + """
[[scene.targets]]
id = "car"
position_m = [35.0, 3.0, 1.0]
velocity_mps = [-10.0, 0.0, 0.0]
rcs_m2 = 10.0
""", 4),
    "two_targets": ("a car at 45 m (approaching) and a cyclist at 70 m (receding)", BS + """
[[scene.targets]]
id = "car"
position_m = [45.0, 8.0, 1.0]
velocity_mps = [-12.0, 0.0, 0.0]
rcs_m2 = 10.0
[[scene.targets]]
id = "cyclist"
position_m = [70.0, -15.0, 1.0]
velocity_mps = [4.0, 3.0, 0.0]
rcs_m2 = 1.0
""", 4),
    "low_snr": ("one target at -25 dB SNR per RE (46 dB processing gain)", BS + """
[[scene.targets]]
id = "faint"
position_m = [52.0, 0.0, 5.0]
velocity_mps = [6.0, 0.0, 0.0]
snr_per_re_db = -25.0
""", 4),
    "array_two_angles": ("4-element ULA, two targets at azimuth -20 and +25 degrees", BS.replace(
        'noise_figure_db = 8.0', 'noise_figure_db = 8.0\nrx_array = { num_elements = [4] }') + """
[[scene.targets]]
id = "left"
position_m = [37.588, -13.681, 5.0]
velocity_mps = [-5.0, 0.0, 0.0]
snr_per_re_db = 0.0
[[scene.targets]]
id = "right"
position_m = [54.378, 25.357, 5.0]
velocity_mps = [3.0, 2.0, 0.0]
snr_per_re_db = -3.0
""", 2),
    "bistatic_pair": ("bs1 receives bs0's frame: line of sight at 60 m and one target (range sum)", """
[radio]
node_id = "bs1"
[[scene.nodes]]
id = "bs0"
position_m = [0.0, 0.0, 5.0]
tx_power_dbm = 20.0
antenna_gain_dbi = 10.0
[[scene.nodes]]
id = "bs1"
role = "rx"
transmits = false
position_m = [60.0, 0.0, 5.0]
antenna_gain_dbi = 10.0
clock_offset_s = 5e-8
[[scene.targets]]
id = "car"
position_m = [30.0, 25.0, 1.0]
velocity_mps = [0.0, -8.0, 0.0]
rcs_m2 = 10.0
""", 2),
}

MULTIBAND = """
[frame]
numerology = 3
num_rb = 42
fft_size = 512
carrier_hz = 24e9
cp_duration_s = 1.33e-6
num_symbols = 64
data = { modulation = "qpsk", seed = 1 }
[scene]
seed = 5
[[scene.nodes]]
id = "bs0_high"
[[scene.nodes]]
id = "bs0_low"
frame = { numerology = 1, num_rb = 42, fft_size = 512, carrier_hz = 5.9e9, cp_duration_s = 5.975e-6, num_symbols = 64, data = { modulation = "qpsk", seed = 2 } }
[[scene.targets]]
id = "t0"
position_m = [117.0, 0.0, 0.0]
velocity_mps = [30.0, 0.0, 0.0]
snr_per_re_db = -10.0
"""


def make(out: Path, name: str, description: str, toml: str, frames: int, seed: int) -> Path:
    body = toml if "[radio]" in toml else '[radio]\nnode_id = "bs0"\n' + toml
    body = body.replace("[[scene.nodes]]", f"[scene]\nseed = {seed}\n[[scene.nodes]]", 1)
    cfg = config.loads(f'name = "{name}"\ndescription = "{description}"\n' + FRAME + body)
    return _record(out / name, cfg, frames)


def _record(path: Path, cfg: config.Config, frames: int) -> Path:
    node = dataclasses.asdict(cfg.scene.node(cfg.radio.node_id)) if cfg.scene else None
    with radio.open_radio(cfg) as r:
        return record_frames(r, frames, path, description=cfg.description, node=node, overwrite=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "offline_data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for seed, (name, (description, toml, frames)) in enumerate(RECORDINGS.items(), start=1):
        written.append(make(args.out, name, description, toml, frames, seed))
    for band in ("high", "low"):
        cfg = config.loads(f'name = "multiband_{band}"\ndescription = "multi-band pair, {band} band: one target '
                           f'at 117 m, 30 m/s, -10 dB per RE"\n[radio]\nnode_id = "bs0_{band}"\n' + MULTIBAND)
        written.append(_record(args.out / f"multiband_{band}", cfg, 2))
    total = 0
    for meta in written:
        size = meta.stat().st_size + meta.with_suffix(".sigmf-data").stat().st_size
        total += size
        print(f"{meta.name:32s} {size / 1e6:6.2f} MB")
    print(f"{'total':32s} {total / 1e6:6.2f} MB")


if __name__ == "__main__":
    main()
