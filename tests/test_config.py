"""Configuration: strict parsing, range checks and messages that name file, key and value."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
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
    ("[frame]\nnum_rb = 276\n", r"frame\.num_rb = 276: allowed 1 \.\.\. 275 RB"),
    ("[frame]\nnum_rb = 100\nfft_size = 1024\n", r"frame\.fft_size = 1024: allowed >= 1200 \(the occupied subcarriers\)"),
    ("[frame]\ncarrier_hz = -1.0\n", r"frame\.carrier_hz = -1\.0: allowed 1e\+06 \.\.\. 3e\+11 Hz"),
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
    ("[frame]\ncp_duration_s = 40e-6\n",
     r"frame\.cp_duration_s = 4e-05: allowed 0 \.\.\. 3\.33008e-05 s \(1023 samples\), shorter than the useful symbol "
     r"\(33\.33 us"),
    ("[frame]\ncp_samples = [10, 2000]\nnum_symbols = 2\n", r"frame\.cp_samples\[1\] = 2000: allowed 0 \.\.\. 1023"),
    ("[frame]\ncp_samples = [10, 20, 30]\nnum_slots = 2\n",
     r"frame\.cp_samples = \(10, 20, 30\): allowed 1 value, 14 \(one slot\) or 28 \(every symbol\) values"),
    ("[frame.ssb]\npositions = [8]\n", r"frame\.ssb\.positions\[0\] = 8: allowed 0 \.\.\. 7"),
    ("[frame.ssb]\npositions = [1, \"2\"]\n", r"frame\.ssb\.positions\[1\] = '2': must be an integer"),
    ("[frame]\ncp_samples = [10, 20, 30]\n", r"frame\.cp_samples = \(10, 20, 30\): allowed 1 value or 14 \(every symbol of the one slot\) values"),
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
    with pytest.raises(ConfigError, match=r"stream\.map_max_cells = 10: allowed 1024 \.\.\. 2\*\*22 cells"):
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


# ---- issue 13, item 10: endpoints, ranges, NaN, wrong types -------------------------------------------------
@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5555", "tcp://*:1", "tcp://0.0.0.0:65535", "tcp://localhost:5555",
                                      "tcp://node-1.lan:5556", "tcp://[::1]:5555", "tcp://[fe80::1%eth0]:5555",
                                      "ipc:///tmp/sdr-isac.sock", "ipc://@abstract", "inproc://host"])
def test_valid_endpoints_load(tmp_path, endpoint):
    cfg = config.load(write(tmp_path, f'[stream]\nhost_endpoint = "{endpoint}"\npublish_endpoint = "{endpoint}"\n'))
    assert cfg.stream.host_endpoint == endpoint == cfg.stream.publish_endpoint


@pytest.mark.parametrize("endpoint, pattern", [
    ("tcp://nonsense", r"allowed a ZeroMQ endpoint tcp://HOST:PORT"),             # the reproducer
    ("tcp://127.0.0.1:0", r"allowed a port 1 \.\.\. 65535"),
    ("tcp://127.0.0.1:65536", r"allowed a port 1 \.\.\. 65535"),
    ("tcp://127.0.0.1:-1", r"allowed a port 1 \.\.\. 65535"),
    ("tcp://127.0.0.1:05555", r"no leading zero"),
    ("tcp://127.0.0.1:*", r"allowed a port"),
    ("tcp://::1:5555", r"write an IPv6 address in brackets"),
    ("tcp://[::g]:5555", r"allowed a ZeroMQ endpoint"),
    ("tcp://256.1.1.1:5555", r"allowed a ZeroMQ endpoint"),
    ("tcp://1.2.3:5555", r"allowed a ZeroMQ endpoint"),
    ("tcp://:5555", r"allowed a ZeroMQ endpoint"),
    ("tcp://a b:5555", r"allowed a ZeroMQ endpoint"),
    ("udp://127.0.0.1:5555", r"allowed a ZeroMQ endpoint"),
    ("127.0.0.1:5555", r"allowed a ZeroMQ endpoint"),
    ("", r"allowed a ZeroMQ endpoint"),
    ("ipc://", r"allowed ipc://PATH with a path of 1 \.\.\. 107 bytes"),
    ("ipc://" + "p" * 108, r"allowed ipc://PATH with a path of 1 \.\.\. 107 bytes"),
    ("inproc://", r"allowed inproc://NAME with a non-empty NAME"),
    ("tcp://127.0.0.1:5555\\n", r"without control characters"),
])
@pytest.mark.parametrize("key", ["host_endpoint", "publish_endpoint"])
def test_bad_endpoints_are_refused_at_load(tmp_path, endpoint, pattern, key):
    with pytest.raises(ConfigError, match=rf"cfg\.toml: stream\.{key} = .*{pattern}") as info:
        config.load(write(tmp_path, f'[stream]\n{key} = "{endpoint}"\n'))
    assert info.value.key == f"stream.{key}"


@pytest.mark.parametrize("text, pattern", [
    ('[radio]\nsample_rate_hz = 0.5\n', r"radio\.sample_rate_hz = 0\.5: allowed 0 or 1000 \.\.\. 1e\+10 Hz"),
    ('[radio]\nrx_channels = [0, 64]\n', r"radio\.rx_channels\[1\] = 64: allowed 0 \.\.\. 63"),
    ('[radio]\nbuffer_size = 4611686018427387904\n', r"radio\.buffer_size = 4611686018427387904: allowed 0 or 1 \.\.\. 2\*\*27 samples"),
    ('[radio]\ntimeout_s = 0.0\n', r"radio\.timeout_s = 0\.0: allowed 0\.001 \.\.\. 3600 s"),
    ('[[scene.nodes]]\nclock_offset_s = 1e300\n', r"scene\.nodes\[0\]\.clock_offset_s = 1e\+300: allowed -0\.001 \.\.\. 0\.001 s"),
    ('[[scene.nodes]]\n[[scene.nodes]]\nid = "b"\nposition_m = [0.0, 1e300, 0.0]\n',
     r"scene\.nodes\[1\]\.position_m\[1\] = 1e\+300: allowed -1e\+07 \.\.\. 1e\+07 m"),
    ('[[scene.nodes]]\ncfo_hz = -1e300\n', r"scene\.nodes\[0\]\.cfo_hz = -1e\+300: allowed -1e\+07 \.\.\. 1e\+07 Hz"),
    ('[[scene.nodes]]\n[[scene.targets]]\nvelocity_mps = [3e8, 0, 0]\n', r"scene\.targets\[0\]\.velocity_mps\[0\] = 300000000\.0: allowed -10000 \.\.\. 10000 m/s"),
    ('[[scene.nodes]]\n[[scene.targets]]\nrcs_m2 = 0.0\n', r"scene\.targets\[0\]\.rcs_m2 = 0\.0: allowed > 0 and <= 1e\+06 m²"),
    ('[[scene.nodes]]\n[[scene.targets]]\nsnr_per_re_db = 1e300\n', r"snr_per_re_db = 1e\+300: allowed -100 \.\.\. 100 dB"),
    ('[[scene.nodes]]\n[[scene.targets]]\nwaypoints = [[0.0, 0.0, 0.0, 0.0], [1e300, 0.0, 0.0, 0.0]]\n',
     r"scene\.targets\[0\]\.waypoints\[1\]\[0\] = 1e\+300"),
    ('[[scene.nodes]]\n[[scene.targets]]\nwaypoints = [[]]\n', r"waypoints = \(\(\),\): allowed \[\[t_s, x_m, y_m, z_m\], \.\.\.\]"),
    ('[[scene.nodes]]\n[[scene.walls]]\nnormal = [1e-300, 0.0, 0.0]\n', r"scene\.walls\[0\]\.normal = .*: allowed a non-zero vector"),
    ('[[scene.nodes]]\nrx_array = {spacing_wavelengths = 1e300}\n', r"scene\.nodes\[0\]\.rx_array\.spacing_wavelengths = 1e\+300"),
    ('[scene]\nseed = -1\n[[scene.nodes]]\n', r"scene\.seed = -1: allowed 0 \.\.\. 2\*\*63 - 1"),
    ('[sensing]\npfa = 0.0\n', r"sensing\.pfa = 0\.0: allowed >= 1e-40 and < 0\.5"),
    ('[sensing]\nmax_range_m = 1e300\n', r"sensing\.max_range_m = 1e\+300: allowed 0 \.\.\. 1e\+08 m"),
    ('[sensing]\nguard_cells = [4, 100000]\n', r"sensing\.guard_cells\[1\] = 100000: allowed 0 \.\.\. 1000 cells"),
    ('[stream]\nframes = 1000000000000\n', r"stream\.frames = 1000000000000: allowed 0 \.\.\. 1000000000 frames"),
    ('[fusion]\ngate_m = 1e300\n', r"fusion\.gate_m = 1e\+300: allowed > 0 and <= 1000 m"),
])
def test_finite_extremes_are_refused_with_the_range(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config.load(write(tmp_path, text))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
@pytest.mark.parametrize("key", ["frame.carrier_hz", "radio.sample_rate_hz", "scene.nodes.clock_offset_s",
                                 "scene.nodes.position_m", "frame.cp_duration_s", "scene.targets.snr_per_re_db",
                                 "sensing.min_range_m", "stream.heartbeat_s", "fusion.target_height_m"])
def test_nan_and_inf_are_refused_everywhere(tmp_path, key, value):
    section, name = key.rsplit(".", 1)
    if section.startswith("scene."):
        text = f"[[scene.nodes]]\n[[{section}]]\n" if section != "scene.nodes" else "[[scene.nodes]]\n"
    else:
        text = f"[{section}]\n"
    text += f"{name} = [{value}, 0.0, 0.0]\n" if name == "position_m" else f"{name} = {value}\n"
    with pytest.raises(ConfigError, match=rf"{name}.* = .*{value.lstrip('+-')}.*: must be a finite number"):
        config.load(write(tmp_path, text))


@pytest.mark.parametrize("make, pattern", [
    (lambda: config.NodeConfig(clock_offset_s=math.nan), r"clock_offset_s = nan: allowed a finite number"),
    (lambda: config.NodeConfig(timing_offset_s=math.nan), r"timing_offset_s = nan: allowed a finite number"),
    (lambda: config.RadioConfig(sample_rate_hz=math.inf), r"sample_rate_hz = inf: allowed a finite number"),
    (lambda: config.RadioConfig(timeout_s=math.nan), r"timeout_s = nan"),
    (lambda: config.TargetConfig(position_m=(math.nan, 0.0, 0.0)), r"position_m\[0\] = nan"),
    (lambda: config.FrameConfig(cp_duration_s=math.nan), r"cp_duration_s = nan"),
    (lambda: config.FrameConfig(num_rb=True), r"num_rb = True: allowed an integer"),
    (lambda: config.FrameConfig(num_rb=51.0), r"num_rb = 51\.0: allowed a whole number"),  # type: ignore[arg-type]
    (lambda: config.FrameConfig(carrier_hz="3.5e9"), r"carrier_hz = '3\.5e9': allowed a number"),  # type: ignore[arg-type]
    (lambda: config.SensingConfig(pfa=math.nan), r"pfa = nan"),
    (lambda: config.StreamConfig(frame_rate_hz=-math.inf), r"frame_rate_hz = -inf"),
    (lambda: config.StreamConfig(host_endpoint="tcp://nonsense"), r"host_endpoint = 'tcp://nonsense'"),
])
def test_direct_construction_is_checked_like_a_file(make, pattern):
    with pytest.raises(ConfigError, match=pattern):
        make()


def test_numpy_scalars_and_ints_for_floats_still_construct():
    node = config.NodeConfig(position_m=tuple(np.array([1.0, 2.0, 3.0])), clock_offset_s=np.float64(1e-6))
    assert node.position_m == (1.0, 2.0, 3.0)
    assert config.BlockerConfig(min_m=(40, -5, -5), max_m=(50, 5, 5)).min_m == (40, -5, -5)
    assert config.RisConfig(num_elements=(np.int64(4), np.int64(4))).num_elements == (4, 4)
    cfg = config.load(Path(__file__).resolve().parent.parent / "hw_configs" / "pluto.toml")
    assert isinstance(cfg.radio.sample_rate_hz, float)                     # written 0: an int for a float


@pytest.mark.parametrize("text, pattern", [
    ("[frame]\nnum_rb = 2.5\n", r"frame\.num_rb = 2\.5: must be an integer"),
    ("[frame]\nnum_rb = true\n", r"frame\.num_rb = True: must be an integer"),
    ("[frame]\nnum_rb = '12'\n", r"frame\.num_rb = '12': must be an integer"),
    ("[frame]\nnum_rb = [1, 2]\n", r"frame\.num_rb = \[1, 2\]: must be an integer"),
    ("[frame]\nnum_rb = {a = 1}\n", r"frame\.num_rb = \{'a': 1\}: must be an integer"),
    ("[frame]\ncarrier_hz = false\n", r"frame\.carrier_hz = False: must be a number"),
    ("[frame]\ncarrier_hz = '3.5e9'\n", r"frame\.carrier_hz = '3\.5e9': must be a number"),
    ("[frame]\nprs = [1]\n", r"frame\.prs = \[1\]: must be a table"),
    ("[frame]\nprs = 'yes'\n", r"frame\.prs = 'yes': must be a table"),
    ("[frame]\ncp_samples = [1.5]\n", r"frame\.cp_samples = \[1\.5\]: must be an integer or a list of an integer"),
    ("[frame.dmrs]\nports = [true]\n", r"frame\.dmrs\.ports\[0\] = True: must be an integer"),
    ("[radio]\nkind = 3\n", r"radio\.kind = 3: must be a string"),
    ('[radio]\nuri = "a\\u0000b"\n', r"radio\.uri = 'a\\x00b': must be a string without NUL characters"),
    ("[scene]\nnodes = {id = 'bs0'}\n", r"scene\.nodes = \{'id': 'bs0'\}: must be a list of a table"),
    ("[scene]\nnodes = [1]\n", r"scene\.nodes\[0\] = 1: must be a table"),
    ("[[scene.nodes]]\nposition_m = {x = 1}\n", r"scene\.nodes\[0\]\.position_m = \{'x': 1\}: must be a list of a number"),
    ("[[scene.nodes]]\nposition_m = [[1, 2, 3]]\n", r"scene\.nodes\[0\]\.position_m\[0\] = \[1, 2, 3\]: must be a number"),
    ("[[scene.nodes]]\n[[scene.nodes]]\nid = 'b'\nfoo = 1\n", r"scene\.nodes\[1\]\.foo: unknown key"),
    ("scene = [1, 2]\n", r"scene = \[1, 2\]: must be a table"),
])
def test_wrong_types_anywhere_are_config_errors_with_the_key_path(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config.load(write(tmp_path, text))


@pytest.mark.parametrize("data, pattern", [
    ([], r"the configuration = \[\]: must be a table"),
    (None, r"the configuration = None: must be a table"),
    ({1: {}}, r"^1: a key must be a string"),
    ({"frame": {"num_rb": 10**5000}}, r"frame\.num_rb = <an integer of 16610 bits>: allowed 1 \.\.\. 275 RB"),
    ({"frame": {"carrier_hz": 10**400}}, r"frame\.carrier_hz = <an integer of 1329 bits>: must be a finite number"),
    ({"frame": {"carrier_hz": None}}, r"frame\.carrier_hz = None: must be a number"),
    ({"frame": {"num_slots": None, "prs": None}}, None),                    # None where the type allows it
    ({"name": "x" * 10_000}, None),
    ({"name": ["x" * 10_000]}, r"name = \['xxxx.* \.\.\.: must be a string"),
])
def test_from_dict_never_leaks_another_exception(data, pattern):
    if pattern is None:
        assert isinstance(config.from_dict(Config, data), Config)
        return
    with pytest.raises(ConfigError, match=pattern):
        config.from_dict(Config, data)


def test_unreadable_files_are_config_errors(tmp_path):
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin\.toml: not UTF-8 text \(byte 11\)"):
        config.load(latin)
    with pytest.raises(ConfigError, match=r"cannot read the configuration file"):
        config.load(tmp_path)                                               # a folder
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"# " + b"x" * config.MAX_CONFIG_BYTES)
    with pytest.raises(ConfigError, match=r"huge\.toml: larger than 1048576 bytes"):
        config.load(huge)
    deep = write(tmp_path, "a = " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(ConfigError, match=r"cfg\.toml: arrays or inline tables nested too deeply"):
        config.load(deep)
    dotted = write(tmp_path, "a." * 50_000 + "b = 1\n")
    with pytest.raises(ConfigError, match=r"cfg\.toml: a key nested more than 32 levels deep"):
        config.load(dotted)


def test_every_numeric_field_has_bounds_in_its_docstring():
    for cls in (config.PrsConfig, config.DmrsConfig, config.SrsConfig, config.TrsConfig, config.DataConfig,
                config.FrameConfig, config.RadioConfig, config.SimRadioConfig, config.ReplayRadioConfig,
                config.PlutoRadioConfig, config.UsrpRadioConfig, config.ArrayConfig, config.NodeConfig,
                config.TargetConfig,
                config.WallConfig, config.ClutterConfig, config.BlockerConfig, config.RisConfig, config.SceneConfig,
                config.SensingConfig, config.StreamConfig, config.FusionConfig):
        for name, bounds in config.field_bounds(cls).items():
            assert name in (cls.__doc__ or ""), f"{cls.__name__}.{name}"
            example = cls(uri="rec.sigmf-meta") if cls is config.ReplayRadioConfig else cls()   # a replay needs a uri
            default = getattr(example, name)
            for value in default if isinstance(default, tuple) else () if default is None else (default,):
                assert bounds.contains(value), f"{cls.__name__}.{name} = {default}: outside {bounds.describe()}"


# ---- [radio]: one section type per backend, chosen by kind ------------------------------------------
KIND_OF_FILE = {"pluto.toml": config.PlutoRadioConfig, "pluto_2ch.toml": config.PlutoRadioConfig,
                "replay.toml": config.ReplayRadioConfig, "usrp_b210.toml": config.UsrpRadioConfig,
                "usrp_x310.toml": config.UsrpRadioConfig}


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parent.parent.glob("hw_configs/*.toml")),
                         ids=lambda p: p.name)
def test_each_file_reads_the_section_of_its_radio_kind(path):
    cfg = config.load(path)
    assert type(cfg.radio) is KIND_OF_FILE.get(path.name, config.SimRadioConfig)
    assert type(cfg.radio) is config.radio_section(cfg.radio.kind) and isinstance(cfg.radio, config.RadioConfig)


@pytest.mark.parametrize("text, pattern", [
    ("[radio]\ntx_attenuation_db = 5\n", r"radio\.tx_attenuation_db: unknown key; tx_attenuation_db belongs to "
                                          r"kind = 'pluto', and this \[radio\] has kind = 'sim'"),
    ('[radio]\nkind = "usrp"\nloop = true\n', r"radio\.loop: unknown key; loop belongs to kind = 'replay', and "
                                                r"this \[radio\] has kind = 'usrp'"),
    ('[radio]\nkind = "pluto"\ngain_mod = "manual"\n', r"radio\.gain_mod: unknown key; did you mean 'gain_mode'\?"),
    ('[radio]\nkind = "usrp"\nclock_source = "gps"\n', r"radio\.clock_source = 'gps': allowed internal, external "
                                                         r"or gpsdo"),
    ('[radio]\nkind = "pluto"\ntx_attenuation_db = 101\n', r"radio\.tx_attenuation_db = 101\.0: allowed 0 \.\.\. 100 dB"),
    ('[radio]\nkind = "sdr"\n', r"radio\.kind = 'sdr': allowed sim, replay, pluto or usrp; set kind to one of them"),
    ('[radio]\nkind = "replay"\n', r"radio\.uri = '': allowed the path of a \.sigmf-meta file for kind = 'replay'"),
])
def test_each_radio_kind_checks_its_own_keys(tmp_path, text, pattern):
    path = tmp_path / "cfg.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=pattern) as info:
        config.load(path)
    assert str(path) in str(info.value) and info.value.key.startswith("radio.")


def test_radio_kinds_are_listed_in_registration_order():
    assert config.radio_kinds()[:4] == ("sim", "replay", "pluto", "usrp")
    assert config.cfar_kinds()[:4] == ("ca", "go", "so", "os")


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parent.parent.glob("hw_configs/*.toml")),
                         ids=lambda p: p.name)
def test_load_with_table_is_load_and_the_file_as_written(path):
    """One read gives both: the configuration load gives, and the table tomllib reads from the file on its own
    (the keys as written, not the defaults); changing the table leaves the configuration as it was."""
    import tomllib
    cfg, table = config.load_with_table(path)
    assert cfg == config.load(path)
    with open(path, "rb") as fh:
        assert table == tomllib.load(fh)
    table.clear()
    assert cfg == config.load(path)


def test_load_with_table_refuses_as_load(tmp_path):
    """The same errors, with the same messages, as :func:`config.load`."""
    for bad in (tmp_path / "nope.toml", write(tmp_path, "[frame\n"), write(tmp_path, "[frame]\nnum_rbb = 3\n")):
        with pytest.raises(ConfigError) as want:
            config.load(bad)
        with pytest.raises(ConfigError) as got:
            config.load_with_table(bad)
        assert str(got.value) == str(want.value) and got.value.key == want.value.key


@pytest.mark.parametrize(("section", "axis", "largest"), [("training_cells = [8, 12]\nguard_cells = [4, 2]", "Doppler", 11),
                                                          ("training_cells = [1000, 4]", "range", 787)])
def test_a_cfar_window_longer_than_the_map_is_refused_at_load(section: str, axis: str, largest: int) -> None:
    """The window must fit the frame's map (a 14-symbol frame: 28 Doppler bins; 792 subcarriers: 1584 range
    bins): refused when the file is read, naming the setting and the largest that fits, not on every capture."""
    text = f"[frame]\nnum_slots = 1\nnum_rb = 66\n[sensing]\n{section}\n"
    with pytest.raises(ConfigError, match=rf"^<string>: sensing\.training_cells = \[.*\]: allowed a CFAR window .* "
                                          rf"no longer than the \d+ {axis} bins of the map of frame .*; at most "
                                          rf"{largest} {axis} training cells"):
        config.loads(text)
    cfg = config.loads(text.replace("[8, 12]", f"[8, {largest}]").replace("[1000, 4]", f"[{largest}, 4]"))
    assert cfg.sensing.map_shape(cfg.frame.num_subcarriers, cfg.frame.total_symbols) == (1584, 28)


def test_the_cfar_window_must_fit_every_node_frame_too() -> None:
    """A scene node's own frame (what the host senses that node's captures with) of 4 symbols: an 8-bin Doppler
    axis against the default 13-cell window; it loaded, and every capture of that node failed.  And a guard too
    wide for any training names the guard to change."""
    text = ('[frame]\nnum_slots = 1\n[scene]\n[[scene.nodes]]\nid = "bs0"\n'
            '[[scene.nodes]]\nid = "rx1"\nframe = { num_symbols = 4 }\n')
    with pytest.raises(ConfigError, match=r"sensing\.training_cells = \[8, 4\]: allowed a CFAR window .* no longer than "
                                          r"the 8 Doppler bins of the map of scene\.nodes\[1\]\.frame \(rx1\) \(4 symbols"):
        config.loads(text)
    with pytest.raises(ConfigError, match=r"; a Doppler guard of at most 12 cells with 1 training cell, or a longer"):
        config.loads("[frame]\nnum_slots = 1\n[sensing]\nguard_cells = [4, 13]\n")
