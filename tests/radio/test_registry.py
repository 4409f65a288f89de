"""Radio kinds register where they are defined: a toy backend through open_radio, its own [radio] section.

Every registration made here is undone by the test that made it (``toy_kind`` unregisters in a
``finally``), so no other test sees the toy kind.
"""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from sdr_isac import config, radio
from sdr_isac.capture import Capture
from sdr_isac.config import RadioConfig, bounded_field
from sdr_isac.errors import ConfigError
from sdr_isac.radio import RadioBase

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ToyRadioConfig(RadioConfig):
    """``kind = "toy"``: a radio that receives a constant.

    Parameters
    ----------
    amplitude : float
        Value of every received sample, 0 ... 10.
    """

    kind: str = "toy"
    amplitude: float = bounded_field(1.0, 0.0, 10.0)


class ToyRadio(RadioBase):
    """Receives ``amplitude`` on every sample; remembers what it was given to send."""

    kind = "toy"
    section = ToyRadioConfig
    config: ToyRadioConfig

    def _tx(self, samples: NDArray[np.complex64], cyclic: bool) -> None:
        self.sent = samples

    def _rx(self, num_samples: int) -> Capture:
        iq = np.full((self.num_rx_channels, num_samples), self.config.amplitude, dtype=np.complex64)
        return self._capture(iq, t0_s=self.seq * num_samples / self.sample_rate_hz)


@pytest.fixture
def toy_kind() -> Iterator[None]:
    radio.register_radio("toy", ToyRadio)
    try:
        yield
    finally:
        radio.unregister_radio("toy")


TOY = '[radio]\nkind = "toy"\nnode_id = "t1"\nsample_rate_hz = 1e6\namplitude = 2.5\n'


def test_a_registered_kind_reads_its_own_section_and_opens_through_open_radio(toy_kind):
    cfg = config.loads(TOY)
    assert type(cfg.radio) is ToyRadioConfig and cfg.radio.amplitude == 2.5 and cfg.radio.sample_rate_hz == 1e6
    with radio.open_radio(cfg) as r:
        assert isinstance(r, ToyRadio) and isinstance(r, radio.Radio)
        capture = r.rx(8)
    assert capture.metadata["radio"] == "toy" and capture.node_id == "t1"
    np.testing.assert_array_equal(capture.iq, np.full((1, 8), 2.5, dtype=np.complex64))
    assert "toy" in radio.registered_radios() and "toy" in config.radio_kinds()
    assert type(RadioConfig(kind="toy", amplitude=1.5)) is ToyRadioConfig


def test_a_registered_section_checks_its_own_keys_and_ranges(toy_kind):
    with pytest.raises(ConfigError, match=r"radio\.amplitude = 20\.0: allowed 0 \.\.\. 10"):
        config.loads(TOY.replace("2.5", "20.0"))
    with pytest.raises(ConfigError, match=r"radio\.amplitud: unknown key; did you mean 'amplitude'\?"):
        config.loads(TOY.replace("amplitude", "amplitud"))
    with pytest.raises(ConfigError, match=r"radio\.loop: unknown key; loop belongs to kind = 'replay', and this "
                                          r"\[radio\] has kind = 'toy'"):
        config.loads(TOY + "loop = true\n")


def test_a_kind_leaves_no_trace_once_unregistered():
    with pytest.raises(ConfigError, match=r"radio\.kind = 'toy': allowed sim, replay, pluto or usrp; set kind to one "
                                          r"of them"):
        config.loads(TOY)
    radio.register_radio("toy", ToyRadio)
    try:
        assert type(config.loads(TOY).radio) is ToyRadioConfig
    finally:
        radio.unregister_radio("toy")
    assert "toy" not in radio.registered_radios() and "toy" not in config.radio_kinds()
    with pytest.raises(ConfigError, match=r"radio\.kind = 'toy': allowed sim, replay, pluto or usrp"):
        config.loads(TOY)


def test_register_radio_is_a_decorator_too():
    @dataclass(frozen=True)
    class DecoRadioConfig(RadioConfig):
        """``kind = "deco"``."""

        kind: str = "deco"

    try:
        @radio.register_radio("deco")
        class DecoRadio(ToyRadio):
            kind = "deco"
            section = DecoRadioConfig

        assert radio.radio_backend("deco") is DecoRadio
        assert type(config.loads('[radio]\nkind = "deco"\n').radio) is DecoRadioConfig
    finally:
        radio.unregister_radio("deco")


def test_bad_registrations_are_refused():
    with pytest.raises(ConfigError, match=r"allowed a subclass of RadioBase"):
        radio.register_radio("toy", dict)                                   # type: ignore[type-var]
    with pytest.raises(ConfigError, match=r"ToyRadio\.kind = 'toy': allowed 'other'"):
        radio.register_radio("other", ToyRadio)
    with pytest.raises(ConfigError, match=r"radio kind 'sim': already registered to SimRadio"):
        radio.register_radio("sim", type("SimToo", (ToyRadio,), {"kind": "sim"}))
    with pytest.raises(ConfigError, match=r"radio section = 'ToyRadioConfig': allowed a section whose kind field "
                                          r"defaults to 'bad'"):
        config.register_radio_section("bad", ToyRadioConfig)
    with pytest.raises(ConfigError, match=r"radio section = .*: allowed a @dataclass\(frozen=True\) subclass"):
        config.register_radio_section("bad", RadioConfig)
    assert "other" not in radio.registered_radios() and "bad" not in config.radio_kinds()


def test_open_radio_refuses_a_kind_without_a_backend():
    config.register_radio_section("toy", ToyRadioConfig)                  # a section, but no backend
    try:
        with pytest.raises(ConfigError, match=r"radio\.kind = 'toy': allowed a kind with a registered backend "
                                              r"\(.*sim.*\); import the module that registers it"):
            radio.open_radio(RadioConfig(kind="toy"))
    finally:
        config.unregister_radio_section("toy")


def test_radio_config_builds_the_section_of_its_kind():
    replay = RadioConfig(kind="replay", uri="x.sigmf-meta", loop=True)
    assert type(replay) is config.ReplayRadioConfig and replay.loop and isinstance(replay, RadioConfig)
    assert type(RadioConfig()) is config.SimRadioConfig
    assert type(dataclasses.replace(replay, node_id="b")) is config.ReplayRadioConfig
    pluto = RadioConfig(kind="pluto", tx_attenuation_db=20.0)
    assert pickle.loads(pickle.dumps(pluto)) == pluto
    with pytest.raises(TypeError, match="loop"):
        RadioConfig(kind="sim", loop=True)                                 # a replay key on a sim radio
    with pytest.raises(ConfigError, match=r"kind = 'pluto': allowed 'sim' in a SimRadioConfig"):
        config.SimRadioConfig(kind="pluto")


def test_a_backend_refuses_another_kinds_section():
    from sdr_isac.radio.replay import ReplayRadio
    with pytest.raises(ConfigError, match=r"radio\.kind = 'sim': ReplayRadio reads a ReplayRadioConfig"):
        ReplayRadio(RadioConfig(kind="sim"))


def test_importing_the_radios_imports_no_hardware_library():
    code = ("import sys; from sdr_isac import config, radio; "
            "cfg = config.loads('[frame]\\nnum_rb = 4\\n[scene]\\n[[scene.nodes]]\\nid = \"bs0\"\\n'); "
            "r = radio.open_radio(cfg); r.rx(10); r.close(); "
            "print(sorted(radio.registered_radios()), [m for m in ('adi', 'iio', 'uhd') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['pluto', 'replay', 'sim', 'usrp'] []"
