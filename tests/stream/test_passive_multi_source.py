"""A receive-only node that hears several transmitters on one carrier (hw_configs/sim_multi_bs.toml plus rx0).

The four BSs send PRS on comb offsets 0 ... 3: their reference signals occupy disjoint REs, so the host senses
rx0's capture once per BS and fuses four bistatic links ("rx0<bs0" ... "rx0<bs3") with the BSs' own ranges.
"""

from __future__ import annotations

import numpy as np
import pytest

from sdr_isac import config
from sdr_isac.errors import SensingError
from sdr_isac.stream import FusionHost
from tests.stream.live_scene import REPO, run_scene

RX0 = '''
[[scene.nodes]]
id = "rx0"
role = "rx"
transmits = false
position_m = [100.0, -30.0, 20.0]
antenna_gain_dbi = 15.0
clock_offset_s = 4e-8
cfo_hz = 700.0
'''


def test_host_senses_a_receive_only_node_once_per_transmitter(tmp_path) -> None:
    text = (REPO / "hw_configs/sim_multi_bs.toml").read_text()
    cut = text.index("[[scene.targets]]")
    (tmp_path / "multi_rx.toml").write_text(text[:cut] + RX0 + "\n" + text[cut:])
    host = run_scene(str(tmp_path / "multi_rx.toml"), frames=2)
    assert host.passive_sources("rx0") == ["bs0", "bs1", "bs2", "bs3"]
    by_source = host.detections_by_node()["rx0"][-1]["by_source"]
    assert set(by_source) == {"bs0", "bs1", "bs2", "bs3"}
    full = [item for item in host.estimates if len(item["nodes"]) == 5]
    assert full, list(host.estimates)
    for item in full:
        truth = np.array(item["truth"][0]["position_m"][:2])
        (est,) = item["estimates"]
        links = [n for n in est["nodes"] if n.startswith("rx0<")]
        assert len(links) >= 2, est["nodes"]                       # range sums via two or more BSs joined
        error = float(np.linalg.norm(np.array(est["position_m"][:2]) - truth))
        assert error < 5 * np.sqrt(np.trace(est["cov_position_m2"])), (error, est)


def test_transmitters_sharing_reference_res_are_refused(tmp_path) -> None:
    text = (REPO / "hw_configs/sim_multi_bs.toml").read_text().replace("re_offset = 1", "re_offset = 0")
    cut = text.index("[[scene.targets]]")
    cfg = config.loads(text[:cut] + RX0 + "\n" + text[cut:])
    host = FusionHost(cfg)
    try:
        with pytest.raises(SensingError, match="'bs0' and 'bs1' share resource elements"):
            host.passive_sources("rx0")
    finally:
        host.stop()
