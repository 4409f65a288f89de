"""``SimRadio``: a node's radio inside a simulated scene.

It hears its own echoes (active sensing) and the transmissions of the other
transmitting nodes of the scene, reflected by targets and structures and along
the line of sight (passive / bistatic sensing).  Other nodes transmit the
frame the configuration gives them, cyclically, from scene time 0.

Units: transmit samples are scaled to the node's transmit power; captures are
scaled so that thermal noise has unit variance per sample (so |RE|**2 is the
SNR per resource element); ``metadata["noise_power_dbm"]`` gives the scale.
Scene time advances by the length of every capture (or, with ``radio.frame_interval_s``, by that
interval rounded to a whole number of captures), and targets move with it.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from numpy.typing import NDArray

from sdr_isac.capture import Capture
from sdr_isac.channel.echo import EchoSynthesizer, Transmission
from sdr_isac.channel.scene import Scene
from sdr_isac.config import FrameConfig, RadioConfig, SceneConfig, SimRadioConfig
from sdr_isac.errors import ConfigError, InputError
from sdr_isac.radio.base import RadioBase
from sdr_isac.radio.registry import register_radio
from sdr_isac.units import dbm_to_watt, watt_to_dbm
from sdr_isac.waveform import IsacFrame

__all__ = ["SimRadio"]


class SimRadio(RadioBase):
    """A simulated radio at node ``config.node_id`` of ``scene``.

    Parameters
    ----------
    config : SimRadioConfig
        ``node_id`` names the scene node.  The number of receive channels is
        the node's receive array size; transmit channels are the frame's ports.
    frame : FrameConfig or None
        The frame this node transmits when its scene entry sets none
        (default: the scene's frame).
    scene : Scene
        The world.
    """

    kind = "sim"
    section = SimRadioConfig
    config: SimRadioConfig

    @classmethod
    def open(cls, config: RadioConfig, frame: FrameConfig | None = None,
             scene: SceneConfig | None = None) -> SimRadio:
        """A simulated radio in ``scene`` (required), transmitting ``frame`` (required)."""
        if scene is None:
            raise ConfigError("radio.kind = 'sim' needs a [scene] section; add one with at least one "
                              "[[scene.nodes]] entry", key="scene")
        if frame is None:
            raise ConfigError("radio.kind = 'sim' needs a [frame] section", key="frame")
        return cls(config, frame, Scene(scene, frame))

    def __init__(self, config: RadioConfig, frame: FrameConfig | None, scene: Scene):
        self._check_section(config)
        node = scene.node(config.node_id)
        frame = node.frame or frame or scene.frame              # a node's own frame (another band) wins
        super().__init__(config, frame)
        if abs(self.sample_rate_hz - frame.sample_rate_hz) > 1e-6 or abs(self.center_freq_hz - frame.carrier_hz) > 1:
            raise InputError(f"radio rate/frequency {self.sample_rate_hz} Hz / {self.center_freq_hz} Hz differ from "
                             f"the frame's {frame.sample_rate_hz} Hz / {frame.carrier_hz} Hz: a simulated node "
                             "runs at its frame's numbers; leave radio.sample_rate_hz and center_freq_hz at 0")
        self.scene = scene
        self.node = node
        seed = [scene.config.seed, zlib.crc32(node.id.encode())]
        self._synth = EchoSynthesizer(scene, node.id, np.random.default_rng(seed))
        self._time_s = 0.0
        self._own: Transmission | None = None
        self._others = self._other_transmissions()
        self._num_tx = IsacFrame(frame).num_ports if node.transmits else 0
        self._chain = _chain_gains(node.rx_channel_phases_deg, node.rx_channel_gains_db, self.num_rx_channels)

    @property
    def num_rx_channels(self) -> int:
        """Receive array elements."""
        return self._synth.num_channels

    @property
    def num_tx_channels(self) -> int:
        """Ports of the node's frame."""
        return max(self._num_tx, 1)

    @property
    def can_transmit(self) -> bool:
        """Whether the scene lets this node transmit."""
        return self.node.transmits

    @property
    def time_s(self) -> float:
        """Scene time of the next capture's first sample."""
        return self._time_s

    def _other_transmissions(self) -> list[Transmission]:
        out = []
        for other in self.scene.config.nodes:
            if other.id == self.node.id or not other.transmits:
                continue
            frame = IsacFrame(self.scene.node_frame(other.id))
            out.append(_scaled(other.id, frame.samples(), other.tx_power_dbm, True, 0.0, frame))
        return out

    def set_ris_steering(self, ris_id: str, incoming_deg: float, outgoing_deg: float) -> None:
        """Program RIS ``ris_id`` of the scene for the next captures (see :meth:`Scene.set_ris_steering`)."""
        self.scene.set_ris_steering(ris_id, incoming_deg, outgoing_deg)

    def _tx(self, samples: NDArray[np.complex64], cyclic: bool) -> None:
        if not self.node.transmits:
            raise InputError(f"node {self.node.id!r} has transmits = false: a receive-only node cannot transmit; "
                             "set transmits = true in its [[scene.nodes]] entry")
        self._own = _scaled(self.node.id, samples, self.node.tx_power_dbm, cyclic, self._time_s,
                            IsacFrame(self.frame) if self.frame is not None else None)

    def _rx(self, num_samples: int) -> Capture:
        transmissions = ([self._own] if self._own is not None else []) + self._others
        window = self._synth.receive(self._time_s, num_samples, transmissions)
        iq = window.iq if self._chain is None else (window.iq * self._chain[:, None]).astype(np.complex64)
        offset = 0
        own = self._own
        if own is not None and own.cyclic:
            period = own.samples.shape[1]
            offset = int(round((own.start_time_s - self._time_s) * self.sample_rate_hz)) % period
        meta = {
            "noise_power_dbm": float(watt_to_dbm(window.noise_power_w)),
            "iq_units": "normalised to unit thermal-noise variance per sample",
            "scene_time_s": self._time_s,
            "truth": {"paths": window.truth, "targets": _targets(self.scene, self._time_s)},
        }
        if own is not None and not own.cyclic:
            self._own = None                                   # a burst is sent once
        step_s = self._step_s(num_samples)
        if step_s != num_samples / self.sample_rate_hz:
            meta["frame_interval_s"] = step_s                  # the host's t0 check expects this step
        t0_local = self._time_s + self.node.clock_offset_s
        capture = self._capture(iq, t0_local, offset, meta)
        self._time_s += step_s
        return capture

    def _step_s(self, num_samples: int) -> float:
        """Scene time to the next capture, s: the capture's length, or ``radio.frame_interval_s`` rounded to a
        whole number (>= 1) of capture lengths (the node's cyclic frame then starts where each capture starts)."""
        length_s = num_samples / self.sample_rate_hz
        interval_s = self.config.frame_interval_s
        if interval_s <= 0.0:
            return length_s
        return max(round(interval_s / length_s), 1) * length_s


def _scaled(node_id: str, samples: NDArray[np.complex64], power_dbm: float, cyclic: bool, start_s: float,
            frame: IsacFrame | None) -> Transmission:
    """Samples scaled so that their mean power (summed over ports) is ``power_dbm``."""
    mean = float(np.mean(np.sum(np.abs(samples) ** 2, axis=0)))
    if mean <= 0:
        raise InputError("tx samples are all zero: nothing to transmit")
    scale = math.sqrt(float(dbm_to_watt(power_dbm)) / mean)
    re_power = float(dbm_to_watt(power_dbm))          # samples without a frame: per-sample power as a stand-in
    if frame is not None and samples.shape[1] == frame.num_samples:
        # unitary OFDM: mean RE power over occupied REs = sample power * N_FFT / K (CP excluded)
        occupied = np.count_nonzero(np.any(frame.grid.values != 0, axis=0))     # REs that carry something
        grid_power = float(np.sum(np.abs(frame.grid.values) ** 2)) / max(int(occupied), 1)
        re_power = grid_power * scale**2
    return Transmission(node_id, (samples * scale).astype(np.complex64), cyclic, start_s, re_power)


def _chain_gains(phases_deg: tuple[float, ...], gains_db: tuple[float, ...],
                 num_channels: int) -> NDArray[np.complex64] | None:
    """Complex gain of each receive chain after the antenna (noise included), or None when all are 1."""
    if not phases_deg and not gains_db:
        return None
    phase = np.deg2rad(np.asarray(phases_deg or (0.0,) * num_channels, dtype=np.float64))
    gain = 10 ** (np.asarray(gains_db or (0.0,) * num_channels, dtype=np.float64) / 20)
    return (gain * np.exp(1j * phase)).astype(np.complex64)


def _targets(scene: Scene, time_s: float) -> list[dict[str, object]]:
    return [{"id": tid, "position_m": pos.tolist(), "velocity_mps": vel.tolist()}
            for tid, (pos, vel) in scene.target_states(time_s).items()]


register_radio("sim", SimRadio)
