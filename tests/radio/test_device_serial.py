"""Device serials from the drivers: what keys a calibration file, so two boards at one address stay apart.

Pluto: the ``hw_serial`` context attribute, read through pyadi-iio -> libiio -> TCP from the test iiod.
USRP: ``mboard_serial`` of UHD's ``get_usrp_rx_info`` (the fake UHD answers as a B210 does).
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from sdr_isac import config
from sdr_isac.radio.calibration import device_serial, key_of
from sdr_isac.radio.usrp import UsrpRadio
from tests.radio.fake_uhd import make_fake_uhd
from tests.radio.iiod_server import IiodServer, pluto_xml
from tests.radio.test_usrp import _config


def _pluto(uri: str):
    pytest.importorskip("adi")
    from sdr_isac.radio.pluto import PlutoRadio
    from tests.radio.test_pluto import TEXT, radio_config

    cfg = config.loads(TEXT)
    return PlutoRadio(radio_config(cfg, uri), cfg.frame)


def test_pluto_serial_is_the_boards_hw_serial():
    shipped = re.search(r'name="hw_serial" value="([^"]+)"', pluto_xml()).group(1)      # what the board reports
    with IiodServer() as server, _pluto(server.uri) as radio:
        assert radio.serial == f"pluto:{shipped}"
        assert device_serial(radio) == f"pluto:{shipped}" and key_of(radio).device_serial == f"pluto:{shipped}"
        assert server.uri not in key_of(radio).device_serial


def test_two_plutos_behind_one_address_have_two_keys():
    """Every Pluto answers at ip:192.168.2.1 out of the box: the address alone would give board B board A's
    calibration.  The same port here, one board after the other."""
    with IiodServer(xml=pluto_xml(serial="104473aaaa")) as first, _pluto(first.uri) as radio:
        key_a, port = key_of(radio), first.port
    with IiodServer(xml=pluto_xml(serial="104473bbbb"), port=port) as second, _pluto(second.uri) as radio:
        key_b = key_of(radio)
    assert (key_a.device_serial, key_b.device_serial) == ("pluto:104473aaaa", "pluto:104473bbbb")
    assert dataclasses.replace(key_a, device_serial="") == dataclasses.replace(key_b, device_serial="")


def test_pluto_without_a_serial_falls_back_to_its_address():
    with IiodServer(xml=pluto_xml(serial="")) as server, _pluto(server.uri) as radio:
        assert radio.serial is None
        assert key_of(radio).device_serial == f"pluto:{server.uri}"


def _usrp(uhd, rx_channels=(0,)):
    return UsrpRadio(_config(rx_channels=rx_channels), uhd_module=uhd)


@pytest.mark.parametrize("rx_channels", [(0,), (0, 1)])
def test_usrp_serial_is_the_motherboards(rx_channels):
    with _usrp(make_fake_uhd(mboard_serial="31ABCDE"), rx_channels) as radio:     # a B210: one board
        assert radio.serial == "usrp:31ABCDE" and key_of(radio).device_serial == "usrp:31ABCDE"


def test_usrp_without_a_serial_falls_back_to_its_args():
    with _usrp(make_fake_uhd(mboard_serial="")) as radio:
        assert radio.serial is None and key_of(radio).device_serial == "usrp:type=b200"
