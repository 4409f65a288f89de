"""Layer 0: units, the error family and the Capture record."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdr_isac import units
from sdr_isac.capture import Capture
from sdr_isac.config import FrameConfig
from sdr_isac.errors import (
    ConfigError,
    InputError,
    RadioError,
    RadioUnavailableError,
    RecordingError,
    SdrIsacError,
    SensingError,
    WireFormatError,
)


def test_constants_are_si_exact():
    assert units.SPEED_OF_LIGHT_MPS == 299_792_458.0
    assert units.BOLTZMANN_J_PER_K == 1.380649e-23


def test_db_round_trips():
    x = np.array([1e-3, 0.5, 1.0, 37.0])
    np.testing.assert_allclose(units.db_to_linear(units.linear_to_db(x)), x, rtol=1e-12)
    np.testing.assert_allclose(units.db_to_amplitude(units.amplitude_to_db(x)), x, rtol=1e-12)
    assert units.linear_to_db(0.0) == -math.inf
    assert units.watt_to_dbm(units.dbm_to_watt(-17.5)) == pytest.approx(-17.5)


def test_thermal_noise_kt0b():
    # k T0 = 4.0039e-21 W/Hz = -173.975 dBm/Hz; 20 MHz and a 6 dB noise figure
    expected = 10 * math.log10(1.380649e-23 * 290 * 20e6 / 1e-3) + 6.0
    assert units.thermal_noise_dbm(20e6, 6.0) == pytest.approx(expected)
    assert units.wavelength_m(3e9) == pytest.approx(0.0999308, rel=1e-6)


def test_error_family_is_catchable():
    for cls in (ConfigError, InputError, RadioError, RadioUnavailableError, RecordingError, WireFormatError,
                SensingError):
        assert issubclass(cls, SdrIsacError)
    assert issubclass(RadioUnavailableError, RadioError)
    err = ConfigError("x = 1: allowed 2; set x to 2", key="x").with_source("a.toml")
    assert str(err) == "a.toml: x = 1: allowed 2; set x to 2" and err.key == "x"


def test_capture_normalises_iq():
    cap = Capture(np.ones(16, dtype=np.complex128), sample_rate_hz=1e6, center_freq_hz=2.4e9,
                  frame=FrameConfig())
    assert cap.iq.dtype == np.complex64 and cap.iq.shape == (1, 16)
    assert cap.num_channels == 1 and cap.num_samples == 16
    assert cap.duration_s == pytest.approx(16e-6)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"iq": np.ones(4, dtype=np.int16)}, r"Capture\.iq has dtype int16"),
    ({"iq": np.ones((2, 2, 2), dtype=np.complex64)}, r"Capture\.iq has shape \(2, 2, 2\)"),
    ({"sample_rate_hz": 0.0}, r"Capture\.sample_rate_hz = 0\.0 Hz: must be > 0"),
    ({"sample_rate_hz": float("nan")}, r"Capture\.sample_rate_hz = nan: must be finite"),
    ({"center_freq_hz": -1.0}, r"Capture\.center_freq_hz = -1\.0 Hz"),
    ({"seq": -1}, r"Capture\.seq = -1"),
])
def test_capture_rejects_bad_input(kwargs, pattern):
    args = {"iq": np.zeros((1, 8), dtype=np.complex64), "sample_rate_hz": 1e6} | kwargs
    with pytest.raises(InputError, match=pattern):
        Capture(**args)
