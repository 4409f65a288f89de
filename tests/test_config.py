"""Configuration: strict parsing, range checks and messages that name file, key and value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sdr_isac import config
from sdr_isac.config import Config, DmrsConfig, FrameConfig, PrsConfig, SrsConfig, TrsConfig
from sdr_isac.errors import ConfigError, SdrIsacError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_is_valid_and_frozen():
    cfg = config.default()
    assert isinstance(cfg, Config)
    assert cfg.frame.prs is not None and cfg.frame.dmrs is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.frame.num_rb = 3  # type: ignore[misc]


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parent.parent.glob("hw_configs/*.toml")),
                         ids=lambda p: p.name)
def test_every_hw_config_loads(path):
    assert isinstance(config.load(path), Config)


def test_derived_quantities_follow_ts38211():
    frame = FrameConfig(numerology=3, num_rb=66, fft_size=1024, num_slots=8)
    assert frame.subcarrier_spacing_hz == 120e3
    assert frame.sample_rate_hz == 1024 * 120e3          # 122.88 Msps (REFERENCE.md §1)
    assert frame.num_subcarriers == 66 * 12
    assert frame.total_symbols == 8 * 14
    assert FrameConfig(numerology=2, cyclic_prefix="extended", num_slots=2).total_symbols == 24


def test_fft_size_default_is_smallest_power_of_two():
    assert FrameConfig(num_rb=51).fft_size == 1024      # 612 subcarriers
    assert FrameConfig(num_rb=273).fft_size == 4096     # 3276 subcarriers
    assert FrameConfig(num_rb=1).fft_size == 128


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, "[frame]\nnumerolgy = 1\n")
    with pytest.raises(ConfigError, match=r"cfg\.toml: frame\.numerolgy: unknown key; did you mean 'numerology'"):
        config.load(path)


def test_unknown_section(tmp_path):
    path = write(tmp_path, "[frame.prss]\ncomb_size = 2\n")
    with pytest.raises(ConfigError, match=r"frame\.prss: unknown key; did you mean 'prs'"):
        config.load(path)


@pytest.mark.parametrize("text, pattern", [
    ("[frame]\nnum_rb = '51'\n", r"frame\.num_rb = '51': must be an integer"),
    ("[frame]\nnum_rb = 51.0\n", r"frame\.num_rb = 51\.0: must be an integer"),
    ("[frame]\ncarrier_hz = true\n", r"frame\.carrier_hz = True: must be a number"),
    ("[frame.dmrs]\nports = 0\n", r"frame\.dmrs\.ports = 0: must be a list of an integer"),
    ("frame = 3\n", r"frame = 3: must be a table"),
    ("[frame.data]\nenabled = 1\n", r"frame\.data\.enabled = 1: must be true or false"),
])
def test_wrong_types(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config.load(write(tmp_path, text))


@pytest.mark.parametrize("text, pattern", [
    ("[frame]\nnumerology = 5\n", r"cfg\.toml: frame\.numerology = 5: allowed 0 \.\.\. 4"),
    ("[frame]\nnum_rb = 276\n", r"frame\.num_rb = 276: allowed 1 RB \.\.\. 275 RB"),
    ("[frame]\nnum_rb = 100\nfft_size = 1024\n", r"frame\.fft_size = 1024: allowed >= 1200 \(the occupied subcarriers\)"),
    ("[frame]\ncarrier_hz = -1.0\n", r"frame\.carrier_hz = -1\.0: allowed 1000000\.0 Hz"),
    ("[frame.prs]\ncomb_size = 5\n", r"frame\.prs\.comb_size = 5: allowed 2, 4, 6 or 12"),
    ("[frame.prs]\ncomb_size = 4\nnum_symbols = 2\n", r"frame\.prs\.num_symbols = 2: allowed 4, 12 with comb_size = 4"),
    ("[frame.prs]\ncomb_size = 4\nnum_symbols = 6\n", r"frame\.prs\.num_symbols = 6: allowed 4, 12"),
    ("[frame.prs]\nn_id = 4096\n", r"frame\.prs\.n_id = 4096: allowed 0 \.\.\. 4095"),
    ("[frame.prs]\nstart_symbol = 12\n", r"frame\.prs\.start_symbol = 12: allowed start_symbol \+ num_symbols <= 14"),
    ("[frame.dmrs]\nadditional_positions = 3\ntype_a_position = 3\n", r"additional_positions = 3: allowed 3 only"),
    ("[frame.dmrs]\nlength = 2\nadditional_positions = 2\n", r"frame\.dmrs\.additional_positions = 2: allowed 0 \.\.\. 1"),
    ("[frame.dmrs]\nports = [4]\n", r"frame\.dmrs\.ports = 4: allowed 0 \.\.\. 3"),
    ("[frame.srs]\ncomb_size = 3\n", r"frame\.srs\.comb_size = 3: allowed 2, 4 or 8"),
    ("[frame.srs]\ncomb_size = 8\nnum_ports = 4\n", r"frame\.srs\.num_ports = 4: allowed 1 or 2 with comb_size = 8"),
    ("[frame.srs]\nnum_rb = 6\n", r"frame\.srs\.num_rb = 6: allowed a multiple of 4"),
    ("[frame]\nnum_rb = 8\n[frame.srs]\ncomb_size = 4\n", r"frame\.srs\.num_rb = 8: allowed 12 \* num_rb / comb_size >= 36"),
    ("[frame.data]\nmodulation = '1024qam'\n", r"frame\.data\.modulation = '1024qam': allowed bpsk"),
    ("[frame]\ncyclic_prefix = 'extended'\n", r"frame\.cyclic_prefix = 'extended': allowed extended CP only with numerology = 2"),
    ("[frame]\ncp_samples = 2000\n", r"frame\.cp_samples = 2000: allowed 0 \.\.\. 1023 samples"),
    ("[frame]\ncp_duration_s = 40e-6\n", r"frame\.cp_duration_s = 4e-05: allowed 0 \.\.\. 1023 samples \(shorter than the useful symbol 33\.33 us"),
    ("[frame]\ncp_samples = [10, 20, 30]\n", r"frame\.cp_samples = \(10, 20, 30\): allowed 1 value, 14 \(one slot\) or 14"),
    ("[frame]\nnum_slots = 1\nnum_symbols = 3\n", r"frame\.num_symbols = 3: allowed either num_slots or num_symbols"),
    ("[frame]\nfft_size = 1000\nnum_rb = 51\n", r"frame\.fft_size = 1000: allowed a multiple of 128 with the normal CP"),
    ("[frame.trs]\nsubcarrier_offset = 4\n", r"frame\.trs\.subcarrier_offset = 4: allowed 0 \.\.\. 3"),
])
def test_out_of_range_values(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        config.load(write(tmp_path, text))
    assert info.value.source == str(tmp_path / "cfg.toml")
    assert info.value.key and info.value.key.startswith("frame")


def test_error_family():
    with pytest.raises(SdrIsacError):
        PrsConfig(comb_size=3)
    with pytest.raises(ValueError):         # ConfigError is also a ValueError
        DmrsConfig(config_type=3)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read the configuration file"):
        config.load(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"cfg\.toml: not valid TOML"):
        config.load(write(tmp_path, "[frame\n"))


def test_explicit_cp_forms():
    uniform = FrameConfig(numerology=3, num_rb=42, fft_size=512, cp_duration_s=1.33e-6, num_symbols=4)
    assert uniform.cyclic_prefix == "explicit"
    assert uniform.explicit_cp_samples() == (round(1.33e-6 * 512 * 120e3),)
    per_slot = FrameConfig(cp_samples=tuple(range(10, 24)))
    assert per_slot.explicit_cp_samples() == tuple(range(10, 24))
    with pytest.raises(ConfigError, match="exactly one of cp_samples or cp_duration_s"):
        FrameConfig(cyclic_prefix="explicit")
    with pytest.raises(ConfigError, match="'explicit' when cp_samples"):
        FrameConfig(cyclic_prefix="normal", cp_samples=10)


def test_sections_accept_valid_edges():
    assert SrsConfig(comb_size=8, num_ports=2, cyclic_shift=5).cyclic_shift == 5
    assert TrsConfig(symbols=(6, 10)).symbols == (6, 10)
    assert DmrsConfig(config_type=2, length=2, ports=tuple(range(12))).ports[-1] == 11
    with pytest.raises(ConfigError, match=r"ports = \(0, 0\): allowed distinct ports"):
        DmrsConfig(ports=(0, 0))


def test_from_dict_rejects_non_dataclass():
    with pytest.raises(TypeError):
        config.from_dict(dict, {})


def test_stream_publish_maps_and_map_size(tmp_path):
    assert config.StreamConfig().publish_maps is True and config.StreamConfig().map_max_cells == 262144
    cfg = config.load(write(tmp_path, "[stream]\npublish_maps = false\nmap_max_cells = 4096\n"))
    assert cfg.stream.publish_maps is False and cfg.stream.map_max_cells == 4096
    with pytest.raises(ConfigError, match=r"stream\.publish_maps") as err:
        config.load(write(tmp_path, '[stream]\npublish_maps = "yes"\n'))
    assert err.value.key == "stream.publish_maps"
    with pytest.raises(ConfigError, match=r"stream\.map_max_cells = 10: allowed 1024 cells \.\.\. 4194304 cells"):
        config.load(write(tmp_path, "[stream]\nmap_max_cells = 10\n"))
    with pytest.raises(ConfigError, match=r"stream\.publish_map: unknown key; did you mean 'publish_maps'"):
        config.load(write(tmp_path, "[stream]\npublish_map = true\n"))


def test_fusion_section(tmp_path):
    cfg = config.load(write(tmp_path, "[fusion]\ntarget_height_m = 60.0\ngate_m = 3.0\n"))
    assert cfg.fusion.target_height_m == 60.0 and cfg.fusion.gate_m == 3.0 and cfg.fusion.enabled
    with pytest.raises(ConfigError, match=r"fusion\.gate_m"):
        config.load(write(tmp_path, "[fusion]\ngate_m = 0.0\n"))
    with pytest.raises(ConfigError, match="did you mean 'gate_m'"):
        config.load(write(tmp_path, "[fusion]\ngate = 3.0\n"))
