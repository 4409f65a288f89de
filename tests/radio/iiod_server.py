"""A fake ADALM-Pluto behind a test IIO daemon (libiio 0.x network protocol).

:class:`IiodServer` listens on ``127.0.0.1`` and speaks the ASCII command
protocol of ``iiod`` 0.x, so the real driver stack -- pyadi-iio -> pylibiio ->
libiio 0.24 (C) -> TCP -- can talk to it as if it were a Pluto.  It serves the
Pluto context of pytest-libiio (``pytest_libiio/resources/devices/pluto.xml``),
keeps every attribute value it is sent, and answers RX buffer reads with the
output of a pluggable *echo* of the last TX buffer.

Connecting
----------
libiio 0.24 takes a port after the host: ``ip:127.0.0.1:PORT`` (one colon:
IPv4 host and port; ``ip:[v6addr]:PORT`` for IPv6; ``ip:[127.0.0.1]:PORT``
does not resolve).  :attr:`IiodServer.uri` gives that form.  Without a port
libiio uses 30431.

Wire format
-----------
Every command is one line ending ``\\r\\n`` (``\\n`` alone is accepted; empty
lines are ignored, as libiio sends ``\\r\\nEXIT\\r\\n``).  An *integer reply*
is ``"%d\\n"``; a negative one is ``-errno``.  Implemented:

=================================================  ===========================================
command                                            reply
=================================================  ===========================================
``VERSION``                                        ``0.24.<7-char tag>\\n``
``PRINT``                                          ``<len>\\n<xml>\\n``
``ZPRINT``                                         ``-22`` (no zstd: the client falls back to PRINT)
``TIMEOUT <ms>``                                   ``0``
``HELP``                                           ``0``
``EXIT``                                           none; the server closes the connection
``OPEN <dev> <samples> <mask> [CYCLIC]``           ``0``
``CLOSE <dev>``                                    ``0``
``READ <dev> <attr>``                              ``<len>\\n<value>\\n``
``READ <dev> DEBUG|BUFFER <attr>``                 same
``READ <dev> INPUT|OUTPUT <chn> <attr>``           same
``READ ...`` without ``<attr>``                    all attributes: ``<len>\\n`` then, per
                                                   attribute, a big-endian int32 length (or
                                                   ``-errno``) and the value padded to 4 bytes,
                                                   then ``\\n``
``WRITE <dev> [DEBUG|BUFFER|INPUT <chn>|OUTPUT     the server reads ``<len>`` bytes, replies
<chn>] <attr> <len>``                              ``<len>`` (bytes written) or ``-errno``
``READBUF <dev> <bytes>``                          ``<n>\\n<mask>\\n<n bytes>``; ``0`` if less than
                                                   one sample is asked for
``WRITEBUF <dev> <bytes>``                         ``0``, then the server reads ``<bytes>`` bytes,
                                                   then ``<bytes>``
``GETTRIG <dev>``                                  ``0`` (no trigger)
``SETTRIG <dev> [<trigger>]``                      ``0``
``SET <dev> BUFFERS_COUNT <n>``                    ``0``
=================================================  ===========================================

``<dev>`` is a device id (``iio:device3``) or name.  ``<mask>`` is the channel
mask as 8-hex-digit 32-bit words, most significant word first; bit ``i`` is
the i-th channel in libiio's order (scan elements by scan index, then the
rest in XML order).  A line the server cannot parse gets ``-22`` (EINVAL), an
unknown device ``-19`` (ENODEV), an unknown channel ``-6`` (ENXIO), an unknown
attribute ``-2`` (ENOENT), a buffer command on a device this connection has
not opened ``-9`` (EBADF), an attribute value the driver would refuse ``-22``.
A failing echo callable gives ``-5`` (EIO) to the READBUF.  Nothing a client
sends stops the server; a connection whose byte stream can no longer be
followed (an over-long line, a length over 64 MiB) is closed.

Context XML
-----------
Served as pytest-libiio ships it, minus the ``value=`` fields.  libiio 0.24
needs no other fix: its network backend overwrites the XML's ``uri`` and
``ip,ip-addr`` context attributes with its own (``ip:127.0.0.1``, no port).
``IiodServer(channels=2)`` serves a 2R2T variant (see :func:`pluto_xml`);
pyadi-iio's ``adi.Pluto`` drives one channel pair only, ``adi.ad9361`` two.

Attribute values
----------------
Initial values come from the ``value=`` fields of the XML (which the served
XML omits, as a real iiod does).  A stored value of ``ERROR`` reads as ``-22``.
Writes behave like the ad9361 driver where it matters to clients:

* numeric attributes with a ``[min step max]`` ``*_available`` sibling must
  parse (integers strictly, as ``kstrtoll`` does, unless the value carries
  ``dB``) and lie in range; ``hardwaregain`` is rounded to its step and read
  back as ``"%.6f dB"``;
  ``rf_bandwidth`` is clamped into its range instead, as the driver does;
* attributes with a word-list ``*_available`` sibling accept only those words;
* channel attributes sharing one sysfs file (e.g. ``in_voltage_rf_bandwidth``)
  share one value;
* ``sampling_frequency`` of ad9361-phy sets RX and TX (phy in/out and the
  RX/TX data devices, whose ``sampling_frequency_available`` becomes
  ``"<f> <f/8> "``); its lower bound is 520833 (reachable with the FIR on)
  instead of the listed 2083333;
* ``out``/``voltage_filter_fir_en`` sets the RX and TX ``filter_fir_en``;
* ``filter_fir_config`` reads back as ``FIR Rx: <taps>,<dec> Tx: <taps>,<int>``.

Sample conventions
------------------
The echo callable sees and returns complex samples in *full-scale units*:

* TX (``cf-ad9361-dds-core-lpc``, format ``le:S16/16>>0``): the client writes
  int16 I/Q interleaved per enabled channel; the server divides by
  ``2**15`` (the DAC takes the 12 MSBs of the 16-bit word, so +-2**15 is
  digital full scale).  pyadi-iio's ``tx()`` does no scaling: it truncates the
  caller's complex values with ``astype(int16)``, so callers pre-scale;
  the customary Pluto scaling ``x * 2**14`` arrives at the echo with
  amplitude 0.5 (-6 dBFS).
* RX (``cf-ad9361-lpc``, format ``le:S12/16>>0``): the echo returns complex
  samples with ``|re|, |im| <= 1``; the server sends
  ``clip(round(x * 2**11), -2048, 2047)`` as sign-extended int16.  libiio
  sign-extends from bit 11, and pyadi-iio's ``rx()`` returns those raw
  integers as ``I + 1j*Q`` (complex128), unscaled.  So ``rx() / 2**11`` gives
  full-scale units back, to within 2**-12 (rounding).

In general the full scale of a channel is ``2**(bits - 1)`` for its
``le:S<bits>/<storage>`` format.  Complex channel ``k`` is the pair of scan
channels with scan indices ``2k`` (I) and ``2k + 1`` (Q).

Echo
----
``echo(tx, num_samples)`` is called once per READBUF.  ``tx`` is the current
TX buffer as complex128, shape ``(num_tx_channels, n)`` with a row per complex
TX channel of the device (rows of channels that were not enabled are zero),
or ``None`` when nothing has been written or the TX buffer that held it was
closed.  It returns ``(num_rx_channels, num_samples)`` complex (a 1-D array is
taken as one row; missing rows are zero); the server keeps the rows of the
enabled RX channels.  The TX buffer persists until it is closed (CLOSE,
EXIT or disconnect), cyclic or not; a new WRITEBUF replaces it.  The default
echo is a loopback: ``0.1 * tx`` repeated cyclically from sample 0 (so each
RX read starts at TX sample 0), or zeros while there is no TX buffer.

Stream timing
-------------
With ``stream_echo(tx, start_sample, num_samples)`` the server tells the echo
where in the TX stream each read starts: RX sample ``k`` sees the (cyclic) TX
stream at index ``start_sample + k``, counted from the TX buffer's first sample.

* Free-running (a stock Pluto, or the TDD engine off): a new TX buffer starts
  the stream at ``start_samples``; each read continues where the last ended,
  plus ``read_gap_samples``.  Reads thus land anywhere in the frame, and a
  client must find the frame by correlation.
* TDD-aligned (``tdd=True``, the engine enabled, channel1 (RX DMA) and
  channel2 (TX DMA) gates enabled, a sync given (``sync_soft`` or
  ``sync_internal``) and a cyclic TX buffer): every read starts at the TDD
  frame start, ``start_sample = on_raw(channel1) - on_raw(channel2)``, TX
  restarting at its first sample every frame.  The engine's clock is taken
  as the baseband sample rate (``_raw`` = samples; on a real Pluto it is the
  FPGA's data clock).

In both, ``pipeline_delay_samples`` (the converters' TX->RX latency) is
subtracted from ``start_sample``, so the leakage lands that many samples
into an aligned buffer.  :meth:`IiodServer.inject_overflow` makes one read
a spliced buffer with the ADC DMA overflow bit set, as an overflow on the
hardware does.  As on the hardware (``axi_dmac``: ``overflow <= en & ~ready``)
the bit also rises on every read after the DMA waited: one kernel buffer
(``SET BUFFERS_COUNT 1``), the TDD gate, or ``read_gap_samples`` > 0.

With libiio's 4 kernel buffers, a TX buffer written while an RX buffer is open
leaves 3 RX reads that were queued and filled before it: they see the previous
TX.  With the TDD engine (``tdd=True``) the RX DMA waits for channel1 before
every transfer; with the engine off, channel1's level is the polarity latched
while the engine last ran (``tdd_latched``; power-on: channel1 high, as the
Pluto HDL's ``0b010``), and a read while it is low fails with ETIMEDOUT.  The plain ``echo(tx, n)`` is called per read (three times,
the middle one discarded, for a read with an injected overflow).

Before it answers a READBUF the server waits (up to 2 s) until no connection
holding an open TX buffer has unread bytes, so that a non-cyclic push, which
libiio sends without waiting for the reply, is in place before the RX read
that follows it.
"""

from __future__ import annotations

import copy
import errno
import importlib.resources
import re
import select
import socket
import threading
import time
import types
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

__all__ = ["ADC_DMA_OVERFLOW", "AttrKey", "EchoFn", "IiodServer", "REG_DMA_STATUS", "StreamEchoFn", "default_echo",
           "pluto_xml", "tdd_device_xml"]

EchoFn = Callable[[NDArray[np.complex128] | None, int], NDArray[np.complexfloating]]
StreamEchoFn = Callable[[NDArray[np.complex128] | None, int, int], NDArray[np.complexfloating]]

#: git tag field of the VERSION reply (7 characters, as libiio expects)
VERSION_TAG = "fakeiio"
VERSION = "0.24"

_MAX_LINE = 64 * 1024
_MAX_PAYLOAD = 64 * 1024 * 1024
_POLL_S = 0.05
_SETTLE_S = 2.0

_RANGE_RE = re.compile(r"^\[\s*(\S+)\s+(\S+)\s+(\S+)\s*\]$")
_FORMAT_RE = re.compile(r"^(le|be):([sSuU])(\d+)/(\d+)(?:X(\d+))?>>(\d+)$")
_INT_RE = re.compile(r"^[+-]?\d+$")

_PHY = "ad9361-phy"
_RX_DEV = "cf-ad9361-lpc"
_TX_DEV = "cf-ad9361-dds-core-lpc"
_SAMPLING_FREQUENCY_MIN = 520833
_TDD_DEV = "iio-axi-tdd-0"
_TDD_CHANNELS = 3                       # Pluto's TDD engine: channel1 RX DMA sync, channel2 TX DMA sync
#: ADI HDL core register (through debugfs ``direct_reg_access``): the ADC/DAC DMA status, write 1 to clear
REG_DMA_STATUS = 0x80000088
ADC_DMA_OVERFLOW = 0x4


class AttrKey(NamedTuple):
    """Where an attribute value lives in :attr:`IiodServer.attributes`.

    ``device`` is the device name (its id if it has none); ``kind`` is
    ``"device"``, ``"debug"``, ``"buffer"``, ``"input"`` or ``"output"`` (the
    last two for channel attributes); ``channel`` is the channel id, ``""``
    for device, debug and buffer attributes.
    """

    device: str
    kind: str
    channel: str
    attr: str


class _IioError(Exception):
    """A command failed; the client gets ``-code``."""

    def __init__(self, code: int, why: str = ""):
        super().__init__(f"{errno.errorcode.get(code, code)}: {why}")
        self.code = code


class _Disconnect(Exception):
    """The peer went away or the stream cannot be followed any more."""


# ---------------------------------------------------------------- the context


@dataclass
class _Channel:
    id: str
    output: bool
    attrs: dict[str, str | None]  # attribute name -> sysfs filename
    scan_index: int = -1  # -1: not a scan element
    fmt: str = ""

    @property
    def kind(self) -> str:
        return "output" if self.output else "input"

    def sample_layout(self) -> tuple[int, int, bool, bool]:
        """(bytes per sample, significant bits, signed, big-endian)."""
        m = _FORMAT_RE.match(self.fmt)
        if not m:
            raise _IioError(errno.EINVAL, f"unsupported format {self.fmt!r}")
        endian, sign, bits, storage, repeat, _shift = m.groups()
        return int(storage) // 8 * int(repeat or 1), int(bits), sign in "sS", endian == "be"


@dataclass
class _Device:
    id: str
    name: str
    channels: list[_Channel]  # libiio order: bit i of a mask is channels[i]
    attrs: list[str]
    debug_attrs: list[str]
    buffer_attrs: list[str]

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def scan_channels(self) -> list[_Channel]:
        return [c for c in self.channels if c.scan_index >= 0]

    @property
    def is_output(self) -> bool:
        return any(c.output for c in self.scan_channels)

    @property
    def num_complex(self) -> int:
        return (max((c.scan_index for c in self.scan_channels), default=-1) + 2) // 2

    def find_channel(self, chn: str, output: bool) -> _Channel:
        for c in self.channels:
            if c.id == chn and c.output == output:
                return c
        raise _IioError(errno.ENXIO, f"no {'output' if output else 'input'} channel {chn} in {self.label}")

    @property
    def mask_words(self) -> int:
        return (len(self.channels) + 31) // 32


def tdd_device_xml(dev_id: str = "iio:device5") -> str:
    """The TDD engine of Pluto firmware >= 0.39 (``iio-axi-tdd-0``, driven by pyadi-iio's ``adi.tddn``).

    Device attributes as the ``adi-axi-tdd`` driver lists them; output channels
    ``channel0 ... channel2`` (Pluto: channel1 gates the RX DMA, channel2 the
    TX DMA) with ``enable``, ``polarity``, ``on_raw``/``off_raw`` and ``on_ms``/``off_ms``.
    """
    dev_attrs = {"burst_count": "0", "enable": "0", "frame_length_ms": "0.000000", "frame_length_raw": "0",
                 "internal_sync_period_ms": "0.000000", "internal_sync_period_raw": "0",
                 "startup_delay_ms": "0.000000", "startup_delay_raw": "0", "state": "0", "sync_external": "0",
                 "sync_internal": "0", "sync_reset": "0", "sync_soft": "0"}
    chan_attrs = {"enable": "0", "off_ms": "0.000000", "off_raw": "0", "on_ms": "0.000000", "on_raw": "0",
                  "polarity": "0"}
    parts = [f'<device id="{dev_id}" name="{_TDD_DEV}" >']
    for k in range(_TDD_CHANNELS):
        parts.append(f'<channel id="channel{k}" type="output" >')
        # the Pluto HDL's power-on polarity is 0b010: the RX DMA gate (channel1) idles high, the RX DMA free
        attrs = dict(chan_attrs, polarity="1" if k == 1 else "0")
        parts += [f'<attribute name="{a}" filename="out_channel{k}_{a}" value="{v}" />' for a, v in attrs.items()]
        parts.append("</channel>")
    parts += [f'<attribute name="{a}" value="{v}" />' for a, v in dev_attrs.items()]
    parts.append('<debug-attribute name="direct_reg_access" value="0x0" /></device>')
    return "".join(parts)


def pluto_xml(channels: int = 1, tdd: bool = False, serial: str | None = None) -> str:
    """The Pluto context of pytest-libiio, as an XML string.

    ``channels=2`` gives a 2R2T Pluto (Rev C/D with the second channel pair
    enabled): ad9361-phy gains ``voltage1`` input and output, cf-ad9361-lpc and
    cf-ad9361-dds-core-lpc gain scan channels ``voltage2``/``voltage3``, the
    DDS gains ``altvoltage4..7`` (TX2_*), and ``adi,2rx-2tx-mode-enable`` reads 1.
    ``tdd=True`` adds the TDD engine of firmware >= 0.39 (:func:`tdd_device_xml`).
    ``serial`` replaces the board's ``hw_serial`` context attribute (``""`` removes it, as old firmware).
    The ``value=`` fields stay in; :class:`IiodServer` strips them when serving.
    """
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, not {channels}")
    source = importlib.resources.files("pytest_libiio") / "resources" / "devices" / "pluto.xml"
    text = source.read_text(encoding="utf-8")
    if serial is not None:
        text, found = re.subn(r'<context-attribute name="hw_serial" value="[^"]*" />',
                              f'<context-attribute name="hw_serial" value="{serial}" />' if serial else "", text)
        if found != 1:
            raise ValueError("pytest-libiio's pluto.xml has no hw_serial context attribute to replace")
    if tdd:
        end = text.rindex("</context>")
        text = text[:end] + tdd_device_xml() + text[end:]
    if channels == 1:
        return text
    prolog, start = _split_prolog(text)
    root = ET.fromstring(text[start:])
    _add_second_channel_pair(root)
    return prolog + ET.tostring(root, encoding="unicode")


def _split_prolog(text: str) -> tuple[str, int]:
    """Everything before ``<context`` (XML declaration and DOCTYPE), and where it ends."""
    start = text.index("<context")
    return text[:start], start


def _device(root: ET.Element, name: str) -> ET.Element:
    for dev in root.iter("device"):
        if dev.get("name") == name:
            return dev
    raise KeyError(name)


def _channel(dev: ET.Element, chn: str, kind: str) -> tuple[int, ET.Element]:
    for i, el in enumerate(list(dev)):
        if el.tag == "channel" and el.get("id") == chn and el.get("type") == kind:
            return i, el
    raise KeyError(chn)


def _clone_channel(el: ET.Element, new_id: str, renames: dict[str, str], index: int | None = None) -> ET.Element:
    new = copy.deepcopy(el)
    new.set("id", new_id)
    for attr in new.iter("attribute"):
        filename = attr.get("filename") or ""
        for old, repl in renames.items():
            filename = filename.replace(old, repl)
        if filename:
            attr.set("filename", filename)
    if index is not None:
        scan = new.find("scan-element")
        if scan is not None:
            scan.set("index", str(index))
    return new


def _add_second_channel_pair(root: ET.Element) -> None:
    phy = _device(root, _PHY)
    for kind, prefix in (("input", "in"), ("output", "out")):
        pos, v0 = _channel(phy, "voltage0", kind)
        phy.insert(pos + 1, _clone_channel(v0, "voltage1", {f"{prefix}_voltage0_": f"{prefix}_voltage1_"}))
    for el in phy.iter("debug-attribute"):
        if el.get("name") == "adi,2rx-2tx-mode-enable":
            el.set("value", "1")
        if el.get("name") == "gaininfo_rx2":
            el.set("value", "71 76 0 0 0 0 0 0")
    for name, kind, prefix in ((_RX_DEV, "input", "in"), (_TX_DEV, "output", "out")):
        dev = _device(root, name)
        pos, _ = _channel(dev, "voltage1", kind)
        for k in (0, 1):
            _, src = _channel(dev, f"voltage{k}", kind)
            new = _clone_channel(src, f"voltage{k + 2}", {f"{prefix}_voltage{k}_": f"{prefix}_voltage{k + 2}_"}, k + 2)
            dev.insert(pos + 1 + k, new)
    dds = _device(root, _TX_DEV)
    for k in range(4):
        _, src = _channel(dds, f"altvoltage{k}", "output")
        name = src.get("name", "").replace("TX1_", "TX2_")
        new = _clone_channel(src, f"altvoltage{k + 4}", {f"altvoltage{k}_TX1_": f"altvoltage{k + 4}_TX2_"})
        new.set("name", name)
        dds.append(new)


def _parse_context(text: str) -> tuple[str, list[_Device], dict[AttrKey, str]]:
    """The XML to serve (no ``value=`` fields), the devices, the initial values."""
    prolog, start = _split_prolog(text)
    root = ET.fromstring(text[start:])
    devices: list[_Device] = []
    values: dict[AttrKey, str] = {}
    for dev_el in root.findall("device"):
        dev_id, name = dev_el.get("id", ""), dev_el.get("name", "")
        label = name or dev_id
        channels: list[_Channel] = []
        for chn_el in dev_el.findall("channel"):
            chn = _Channel(chn_el.get("id", ""), chn_el.get("type") == "output", {})
            scan = chn_el.find("scan-element")
            if scan is not None:
                chn.scan_index = int(scan.get("index", "-1"))
                chn.fmt = scan.get("format", "")
            for attr_el in chn_el.findall("attribute"):
                attr = attr_el.get("name", "")
                chn.attrs[attr] = attr_el.get("filename")
                values[AttrKey(label, chn.kind, chn.id, attr)] = attr_el.attrib.pop("value", "0")
            channels.append(chn)
        # libiio 0.x numbers channels after a stable sort: scan elements by
        # scan index (then shift), the others after them in XML order.
        channels.sort(key=lambda c: (0, c.scan_index, _shift(c.fmt)) if c.scan_index >= 0 else (1, 0, 0))
        lists: dict[str, list[str]] = {"attribute": [], "debug-attribute": [], "buffer-attribute": []}
        kinds = {"attribute": "device", "debug-attribute": "debug", "buffer-attribute": "buffer"}
        for tag, names in lists.items():
            for attr_el in dev_el.findall(tag):
                attr = attr_el.get("name", "")
                names.append(attr)
                values[AttrKey(label, kinds[tag], "", attr)] = attr_el.attrib.pop("value", "0")
        devices.append(
            _Device(dev_id, name, channels, lists["attribute"], lists["debug-attribute"], lists["buffer-attribute"])
        )
    xml = prolog + ET.tostring(root, encoding="unicode")
    xml.encode("ascii")  # pylibiio decodes the context XML as ASCII
    return xml, devices, values


def _shift(fmt: str) -> int:
    m = _FORMAT_RE.match(fmt)
    return int(m.group(6)) if m else 0


# ------------------------------------------------------------------ the echo


def default_echo(tx: NDArray[np.complex128] | None, num_samples: int) -> NDArray[np.complex128]:
    """Loopback: ``0.1 * tx`` repeated cyclically from sample 0; zeros without TX."""
    if tx is None or tx.shape[-1] == 0:
        return np.zeros((1, num_samples), dtype=np.complex128)
    return 0.1 * tx[:, np.arange(num_samples) % tx.shape[-1]]


# ---------------------------------------------------------------- connections


@dataclass
class _OpenBuffer:
    device: _Device
    samples: int
    channels: list[_Channel]  # enabled scan channels, in buffer order
    mask: str
    cyclic: bool

    @property
    def sample_size(self) -> int:
        size = 0
        for chn in self.channels:
            length = chn.sample_layout()[0]
            size += -size % length + length  # each sample aligned to its own length
        return size


@dataclass(eq=False)  # hashed by identity
class _Connection:
    sock: socket.socket
    peer: str
    buffers: dict[str, _OpenBuffer] = field(default_factory=dict)  # device id -> open buffer
    pending: bytearray = field(default_factory=bytearray)
    busy: bool = False  # bytes taken from the socket and not yet answered
    closed: bool = False
    timeout_ms: int = 0

    def _fill(self, stop: threading.Event) -> None:
        while True:
            if stop.is_set() or self.closed:
                raise _Disconnect("server stopping")
            try:
                readable, _, _ = select.select([self.sock], [], [], _POLL_S)
            except (OSError, ValueError) as exc:
                raise _Disconnect(str(exc)) from exc
            if readable:
                break
        self.busy = True  # set before the bytes leave the kernel: see IiodServer._settle_tx
        try:
            data = self.sock.recv(256 * 1024)
        except OSError as exc:
            raise _Disconnect(str(exc)) from exc
        if not data:
            raise _Disconnect("peer closed")
        self.pending += data

    def readline(self, stop: threading.Event) -> bytes:
        while True:
            end = self.pending.find(b"\n")
            if end >= 0:
                line = bytes(self.pending[:end])
                del self.pending[: end + 1]
                return line.rstrip(b"\r")
            if len(self.pending) > _MAX_LINE:
                raise _Disconnect("line too long")
            self._fill(stop)

    def read_exact(self, n: int, stop: threading.Event) -> bytes:
        while len(self.pending) < n:
            self._fill(stop)
        data = bytes(self.pending[:n])
        del self.pending[:n]
        return data

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _Disconnect(str(exc)) from exc

    def send_int(self, value: int) -> None:
        self.send(f"{value}\n".encode())


# -------------------------------------------------------------------- server


class IiodServer:
    """A threaded fake iiod serving a Pluto on ``127.0.0.1``.

    Parameters
    ----------
    echo : callable or None
        ``echo(tx, num_samples) -> rx`` as described in the module docstring;
        ``None`` uses :func:`default_echo` (loopback at -20 dB).
    channels : int
        1 for the stock 1R1T Pluto, 2 for a 2R2T one.
    port : int
        TCP port; 0 picks a free one (see :attr:`port`).
    xml : str or None
        Serve this context instead of the Pluto one (values from ``value=``).
    tdd : bool
        Also serve the TDD engine of firmware >= 0.39 (``iio-axi-tdd-0``): see
        *Stream timing* in the module docstring.
    stream_echo : callable or None
        ``stream_echo(tx, start_sample, num_samples) -> rx``: an echo that is
        told where in the TX stream each RX read starts (see *Stream timing*);
        replaces ``echo`` when given.
    start_samples : int
        Free-running RX: the TX stream index of the first RX sample after a TX buffer is written.
    read_gap_samples : int
        Free-running RX: samples that pass between two reads (0: contiguous buffers).
    pipeline_delay_samples : int
        The fixed TX->RX latency of the converters and filters, in samples: RX
        sample ``k`` sees the TX stream at ``start + k`` with ``start`` reduced by it.
    """

    def __init__(self, echo: EchoFn | None = None, *, channels: int = 1, port: int = 0, xml: str | None = None,
                 tdd: bool = False, stream_echo: StreamEchoFn | None = None, start_samples: int = 0,
                 read_gap_samples: int = 0, pipeline_delay_samples: int = 0):
        self.echo: EchoFn = echo if echo is not None else default_echo
        self.stream_echo = stream_echo
        self.channels = channels
        self.start_samples = int(start_samples)
        self.read_gap_samples = int(read_gap_samples)
        self.pipeline_delay_samples = int(pipeline_delay_samples)
        self._xml, self._devices, self._values = _parse_context(
            xml if xml is not None else pluto_xml(channels, tdd=tdd))
        self._has_tdd = any(d.name == _TDD_DEV for d in self._devices)
        self._tdd_synced = False
        #: each TDD channel's output level while the engine is off: its polarity, latched while the engine runs
        self.tdd_latched: dict[int, int] = {
            k: int(self._values[AttrKey(_TDD_DEV, "output", f"channel{k}", "polarity")])
            for k in range(_TDD_CHANNELS)} if self._has_tdd else {}
        self._stale_reads = 0                      # RX reads still queued in kernel buffers from before a new TX
        self._stale_tx: NDArray[np.complex128] | None = None
        self._tx_cyclic = False
        self._stream_pos = self.start_samples
        self._overflows: dict[int, tuple[int | None, int]] = {}
        self._registers: dict[tuple[str, int], int] = {}
        self._reg_selected: dict[str, int] = {}
        self.rx_starts: list[int] = []
        """TX stream index of the first sample of every RX read (see *Stream timing*)."""
        self._aliases = self._sysfs_aliases()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._requested_port = port
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._threads: set[threading.Thread] = set()
        self._connections: set[_Connection] = set()
        self._tx_current: NDArray[np.complex128] | None = None
        self._tx_owner: _Connection | None = None
        self._tx_history: list[NDArray[np.complex128]] = []
        self._commands: list[str] = []
        self._rx_reads = 0
        self.errors: list[BaseException] = []
        """Exceptions raised by the echo callable or by handlers (kept for tests)."""
        self.triggers: dict[str, str | None] = {}
        self.buffers_count: dict[str, int] = {}

    # ------------------------------------------------------------ lifecycle

    def start(self) -> IiodServer:
        """Bind, listen and start accepting; returns ``self``."""
        if self._listener is not None:
            raise RuntimeError("server already started")
        self._stop.clear()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._requested_port))
        listener.listen(16)
        self._listener = listener
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"iiod-accept:{self.port}", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every socket and join every thread."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            self._shutdown(conn)
        deadline = time.monotonic() + timeout
        threads = [self._accept_thread] if self._accept_thread else []
        with self._lock:
            threads += list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        self._listener = None
        self._accept_thread = None
        if alive:
            raise RuntimeError(f"iiod threads did not stop: {alive}")

    def __enter__(self) -> IiodServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ for tests

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("server not started")
        port: int = self._listener.getsockname()[1]
        return port

    @property
    def uri(self) -> str:
        """``ip:127.0.0.1:PORT``, the form libiio 0.24 accepts for a custom port."""
        return f"ip:127.0.0.1:{self.port}"

    @property
    def xml(self) -> str:
        """The context XML as served by PRINT."""
        return self._xml

    @property
    def attributes(self) -> Mapping[AttrKey, str]:
        """Live read-only view of the stored attribute values."""
        return types.MappingProxyType(self._values)

    @property
    def tx_history(self) -> list[NDArray[np.complex128]]:
        """Every TX buffer written, as ``(num_tx_channels, n)`` complex128 in full-scale units."""
        with self._lock:
            return list(self._tx_history)

    @property
    def tx_current(self) -> NDArray[np.complex128] | None:
        """The TX buffer the echo sees now (``None`` if none)."""
        with self._lock:
            return self._tx_current

    @property
    def rx_reads(self) -> int:
        """Number of READBUF commands answered with data."""
        with self._lock:
            return self._rx_reads

    @property
    def commands(self) -> list[str]:
        """Every non-empty command line received, in arrival order (payloads excluded)."""
        with self._lock:
            return list(self._commands)

    @property
    def num_rx_channels(self) -> int:
        return self._find_device(_RX_DEV).num_complex

    @property
    def num_tx_channels(self) -> int:
        return self._find_device(_TX_DEV).num_complex

    def attr_key(
        self, device: str, attr: str, channel: str = "", output: bool = False, kind: str | None = None
    ) -> AttrKey:
        """The :class:`AttrKey` of an attribute: a channel one if ``channel``, else ``kind`` (default device)."""
        label = self._find_device(device).label
        if channel:
            return AttrKey(label, "output" if output else "input", channel, attr)
        return AttrKey(label, kind or "device", "", attr)

    def get_attr(self, device: str, attr: str, channel: str = "", output: bool = False, kind: str | None = None) -> str:
        """A stored value (see :meth:`attr_key`)."""
        return self._values[self.attr_key(device, attr, channel, output, kind)]

    def inject_overflow(self, read_index: int, at_sample: int | None = None, lost_samples: int = 1000) -> None:
        """Make RX read number ``read_index`` (0-based over the server's life) a buffer with a gap.

        The DMA FIFO overflowed ``at_sample`` samples into the buffer (default:
        half way): ``lost_samples`` samples of the stream never reach the
        buffer, whose rest comes from after them -- a spliced buffer, as the
        hardware delivers it -- and bit 2 (ADC DMA overflow) of the
        ``cf-ad9361-lpc`` status register :data:`REG_DMA_STATUS` is set
        (read and cleared by clients through ``direct_reg_access``, as
        libiio's ``iio_adi_xflow_check`` does).
        """
        if read_index < 0 or lost_samples < 1 or (at_sample is not None and at_sample < 0):
            raise ValueError("read_index >= 0, lost_samples >= 1 and at_sample >= 0 (or None) expected")
        with self._lock:
            self._overflows[int(read_index)] = (at_sample, int(lost_samples))

    def register(self, device: str, address: int) -> int:
        """A core register's value (what ``direct_reg_access`` reads at ``address``)."""
        with self._lock:
            return self._registers.get((self._find_device(device).label, address), 0)

    @property
    def tdd_aligned(self) -> bool:
        """Whether RX reads are now aligned by the TDD engine (enabled, synced, both DMA gates on, cyclic TX)."""
        with self._lock:
            return self._tdd_aligned()

    def set_attr(
        self, device: str, attr: str, value: str, channel: str = "", output: bool = False, kind: str | None = None
    ) -> None:
        """Store a value as the hardware would report it (no validation), e.g. an RSSI."""
        key = self.attr_key(device, attr, channel, output, kind)
        if key not in self._values:
            raise KeyError(key)
        with self._lock:
            self._store(key, value)

    # ------------------------------------------------------------ sockets

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        try:
            listener.settimeout(_POLL_S)  # wake up to look at the stop flag
        except OSError:
            return  # stop() closed the listener before this thread got going
        while not self._stop.is_set():
            try:
                sock, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break  # listener closed by stop()
            try:
                sock.settimeout(10.0)  # bounds sendall to a client that stopped reading
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # the client is already gone
                sock.close()
                continue
            conn = _Connection(sock, f"{addr[0]}:{addr[1]}")
            thread = threading.Thread(target=self._serve, args=(conn,), name=f"iiod-conn:{conn.peer}", daemon=True)
            with self._lock:  # stop() snapshots the threads under this lock: start them under it too
                if self._stop.is_set():
                    sock.close()
                    break
                self._connections.add(conn)
                self._threads.add(thread)
                thread.start()

    def _shutdown(self, conn: _Connection) -> None:
        conn.closed = True
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _serve(self, conn: _Connection) -> None:
        try:
            while not self._stop.is_set():
                try:
                    raw = conn.readline(self._stop)
                except _Disconnect:
                    break
                line = raw.decode("ascii", "replace").strip()
                if line:
                    with self._lock:
                        self._commands.append(line)
                    try:
                        keep_open = self._dispatch(conn, line)
                    except _IioError as exc:
                        keep_open = True
                        try:
                            conn.send_int(-exc.code)
                        except _Disconnect:
                            break
                    except _Disconnect:
                        break
                    except Exception as exc:  # a bug here must not take the server down
                        self.errors.append(exc)
                        try:
                            conn.send_int(-errno.EIO)
                        except _Disconnect:
                            break
                        keep_open = True
                    if not keep_open:
                        break
                conn.busy = bool(conn.pending)
        finally:
            self._release(conn)

    def _release(self, conn: _Connection) -> None:
        with self._lock:
            for dev_id in list(conn.buffers):
                self._close_buffer(conn, dev_id)
            self._connections.discard(conn)
            self._threads.discard(threading.current_thread())
        conn.busy = False
        conn.closed = True
        try:
            conn.sock.close()
        except OSError:
            pass

    # ------------------------------------------------------------ dispatch

    def _dispatch(self, conn: _Connection, line: str) -> bool:
        """Run one command; False closes the connection."""
        words = line.split()
        cmd, args = words[0].upper(), words[1:]
        if cmd == "EXIT":
            return False
        handler = self._handlers.get(cmd)
        if handler is None:
            raise _IioError(errno.EINVAL, f"unknown command {cmd!r}")
        handler(self, conn, args)
        return True

    # -- context

    def _cmd_version(self, conn: _Connection, args: list[str]) -> None:
        self._expect(args, 0)
        conn.send(f"{VERSION}.{VERSION_TAG}\n".encode())

    def _cmd_print(self, conn: _Connection, args: list[str]) -> None:
        self._expect(args, 0)
        data = self._xml.encode("ascii")
        conn.send(f"{len(data)}\n".encode() + data + b"\n")

    def _cmd_zprint(self, conn: _Connection, args: list[str]) -> None:
        raise _IioError(errno.EINVAL, "ZPRINT: no zstd here")

    def _cmd_help(self, conn: _Connection, args: list[str]) -> None:
        conn.send_int(0)

    def _cmd_timeout(self, conn: _Connection, args: list[str]) -> None:
        self._expect(args, 1)
        conn.timeout_ms = self._parse_count(args[0])
        conn.send_int(0)

    # -- triggers and kernel buffers

    def _cmd_gettrig(self, conn: _Connection, args: list[str]) -> None:
        self._expect(args, 1)
        dev = self._find_device(args[0])
        trigger = self.triggers.get(dev.id)
        if trigger is None:
            conn.send_int(0)
        else:
            conn.send(f"{len(trigger)}\n{trigger}\n".encode())

    def _cmd_settrig(self, conn: _Connection, args: list[str]) -> None:
        self._expect(args, 1, 2)
        dev = self._find_device(args[0])
        trigger = self._find_device(args[1]).label if len(args) == 2 else None
        self.triggers[dev.id] = trigger
        conn.send_int(0)

    def _cmd_set(self, conn: _Connection, args: list[str]) -> None:
        self._expect(args, 3)
        if args[1].upper() != "BUFFERS_COUNT":
            raise _IioError(errno.EINVAL, f"SET {args[1]}")
        dev = self._find_device(args[0])
        self.buffers_count[dev.id] = self._parse_count(args[2])
        conn.send_int(0)

    # -- attributes

    def _cmd_read(self, conn: _Connection, args: list[str]) -> None:
        keys = self._attr_keys(args)
        if len(keys) == 1:
            value = self._read_value(keys[0]).encode()
            conn.send(f"{len(value)}\n".encode() + value + b"\n")
            return
        blob = bytearray()  # READ without an attribute: every attribute, binary
        for key in keys:
            try:
                value = self._read_value(key).encode()
            except _IioError as exc:
                blob += (-exc.code).to_bytes(4, "big", signed=True)
                continue
            blob += len(value).to_bytes(4, "big", signed=True) + value + bytes(-len(value) % 4)
        conn.send(f"{len(blob)}\n".encode() + bytes(blob) + b"\n")

    def _cmd_write(self, conn: _Connection, args: list[str]) -> None:
        if not args:
            raise _IioError(errno.EINVAL, "WRITE without arguments")
        length = self._parse_count(args[-1])
        if length > _MAX_PAYLOAD:
            raise _Disconnect("attribute payload too long")
        payload = conn.read_exact(length, self._stop)  # consume it whatever happens next
        keys = self._attr_keys(args[:-1])
        if len(keys) != 1:
            raise _IioError(errno.ENOSYS, "writing all attributes at once is not implemented")
        value = payload.decode("utf-8", "replace").rstrip("\x00")
        with self._lock:
            self._write_value(keys[0], value)
        conn.send_int(length)

    def _attr_keys(self, args: list[str]) -> list[AttrKey]:
        """The attribute(s) addressed by READ/WRITE arguments (without the WRITE length)."""
        if not args:
            raise _IioError(errno.EINVAL, "no device")
        dev = self._find_device(args[0])
        rest = args[1:]
        kind, channel = "device", ""
        if rest and rest[0].upper() in ("INPUT", "OUTPUT"):
            if len(rest) < 2:
                raise _IioError(errno.EINVAL, "channel missing")
            output = rest[0].upper() == "OUTPUT"
            chn = dev.find_channel(rest[1], output)
            kind, channel, names, rest = chn.kind, chn.id, list(chn.attrs), rest[2:]
        elif rest and rest[0].upper() in ("DEBUG", "BUFFER"):
            kind = rest[0].lower()
            names = dev.debug_attrs if kind == "debug" else dev.buffer_attrs
            rest = rest[1:]
        else:
            names = dev.attrs
        if len(rest) > 1:
            raise _IioError(errno.EINVAL, "too many arguments")
        if not rest:
            return [AttrKey(dev.label, kind, channel, name) for name in names]
        if rest[0] not in names:
            raise _IioError(errno.ENOENT, f"no attribute {rest[0]}")
        return [AttrKey(dev.label, kind, channel, rest[0])]

    def _read_value(self, key: AttrKey) -> str:
        with self._lock:
            if key.kind == "debug" and key.attr == "direct_reg_access":
                address = self._reg_selected.get(key.device, 0)
                return f"0x{self._registers.get((key.device, address), 0):X}"
            value = self._values[key]
        if value == "ERROR":
            raise _IioError(errno.EINVAL, f"{key} reads as an error")
        return value

    # -- buffers

    def _cmd_open(self, conn: _Connection, args: list[str]) -> None:
        self._expect(args, 3, 4)
        dev = self._find_device(args[0])
        samples = self._parse_count(args[1])
        mask = args[2]
        cyclic = len(args) == 4
        if cyclic and args[3].upper() != "CYCLIC":
            raise _IioError(errno.EINVAL, f"OPEN flag {args[3]!r}")
        if len(mask) != 8 * dev.mask_words or not re.fullmatch(r"[0-9a-fA-F]+", mask):
            raise _IioError(errno.EINVAL, f"mask {mask!r} for {len(dev.channels)} channels")
        bits = int(mask, 16)
        enabled = [c for i, c in enumerate(dev.channels) if bits >> i & 1]
        if not enabled or samples == 0 or any(c.scan_index < 0 for c in enabled):
            raise _IioError(errno.EINVAL, "no scan channel enabled, a non-scan channel enabled, or 0 samples")
        for chn in enabled:
            chn.sample_layout()  # format supported?
        with self._lock:
            if dev.id in conn.buffers:
                raise _IioError(errno.EBUSY, f"{dev.label} already open on this connection")
            conn.buffers[dev.id] = _OpenBuffer(dev, samples, enabled, mask.lower(), cyclic)
        conn.send_int(0)

    def _cmd_close(self, conn: _Connection, args: list[str]) -> None:
        self._expect(args, 1)
        dev = self._find_device(args[0])
        with self._lock:
            if dev.id not in conn.buffers:
                raise _IioError(errno.ENXIO, f"{dev.label} not open")
            self._close_buffer(conn, dev.id)
        conn.send_int(0)

    def _close_buffer(self, conn: _Connection, dev_id: str) -> None:
        """Forget a buffer; closing the TX buffer that holds the waveform stops it."""
        buf = conn.buffers.pop(dev_id)
        if buf.device.is_output and self._tx_owner is conn:
            self._tx_current = None
            self._tx_owner = None

    def _cmd_writebuf(self, conn: _Connection, args: list[str]) -> None:
        self._expect(args, 2)
        nbytes = self._parse_count(args[1])
        buf = self._open_buffer(conn, args[0])
        if not buf.device.is_output:
            raise _IioError(errno.EINVAL, f"{buf.device.label} is an input device")
        if nbytes > _MAX_PAYLOAD:
            raise _Disconnect("buffer payload too long")
        if nbytes < buf.sample_size:
            conn.send_int(0)
            return
        conn.send_int(0)  # device ready; the data follows
        data = conn.read_exact(nbytes, self._stop)
        tx = self._decode(buf, data)
        with self._lock:
            rx_open = any(_RX_DEV in (b.device.name, b.device.id) for c in self._connections for b in c.buffers.values())
            if rx_open and self._tx_history and not self._tdd_aligned():
                # the RX DMA's other kernel buffers were queued and filled before this TX (and before the previous
                # TX buffer was closed to make room for it): the next reads get them
                self._stale_reads = self._rx_kernel_buffers() - 1
                self._stale_tx = self._tx_history[-1]
            self._tx_current = tx
            self._tx_owner = conn
            self._tx_cyclic = buf.cyclic
            self._stream_pos = self.start_samples           # the new TX buffer starts now
            self._tx_history.append(tx)
        conn.send_int(nbytes)

    def _cmd_readbuf(self, conn: _Connection, args: list[str]) -> None:
        self._expect(args, 2)
        nbytes = self._parse_count(args[1])
        buf = self._open_buffer(conn, args[0])
        if buf.device.is_output:
            raise _IioError(errno.EINVAL, f"{buf.device.label} is an output device")
        num_samples = nbytes // buf.sample_size
        if num_samples == 0:
            conn.send_int(0)
            return
        self._settle_tx(conn)
        with self._lock:
            if self._rx_gate_low():
                raise _IioError(errno.ETIMEDOUT, "the RX DMA waits for its TDD gate (channel1), which idles low: the "
                                                 "engine is off and channel1's latched polarity is 0")
            tx = None if self._tx_current is None else self._tx_current.copy()
            if self._stale_reads > 0:
                self._stale_reads -= 1
                tx = None if self._stale_tx is None else self._stale_tx.copy()
            index = self._rx_reads
            overflow = self._overflows.pop(index, None)
            start = self._rx_start()
            self.rx_starts.append(start)
        try:
            rx = self._receive(tx, start, num_samples, overflow)
        except Exception as exc:
            self.errors.append(exc)
            raise _IioError(errno.EIO, f"echo raised {exc!r}") from exc
        data = self._encode(buf, rx, num_samples)
        with self._lock:
            self._rx_reads += 1
            # the DMA raises its overflow bit on every sample it does not transfer: a loss inside the buffer, and
            # any wait between transfers (one kernel buffer, the TDD gate, a host that reads with pauses)
            idle = self._rx_kernel_buffers() == 1 or self._tdd_aligned() or self.read_gap_samples > 0
            if overflow is not None or idle:
                key = (_RX_DEV, REG_DMA_STATUS)
                self._registers[key] = self._registers.get(key, 0) | ADC_DMA_OVERFLOW
            if not self._tdd_aligned():
                self._stream_pos = start + self.pipeline_delay_samples + num_samples + self.read_gap_samples + (
                    overflow[1] if overflow else 0)
        conn.send(f"{len(data)}\n{buf.mask}\n".encode() + data)

    def _rx_start(self) -> int:
        """The TX stream index the next RX read starts at (see *Stream timing*)."""
        if self._tdd_aligned():
            on = {k: int(float(self._values[AttrKey(_TDD_DEV, "output", f"channel{k}", "on_raw")])) for k in (1, 2)}
            return on[1] - on[2] - self.pipeline_delay_samples
        return self._stream_pos - self.pipeline_delay_samples

    def _rx_kernel_buffers(self) -> int:
        """The RX DMA's kernel buffers (libiio's default 4 until SET BUFFERS_COUNT)."""
        return self.buffers_count.get(self._find_device(_RX_DEV).id, 4)

    def _rx_gate_low(self) -> bool:
        """Whether the RX DMA is blocked: the engine off and channel1 latched low (it waits before each transfer)."""
        if not self._has_tdd:
            return False
        return self._values[AttrKey(_TDD_DEV, "device", "", "enable")] != "1" and self.tdd_latched[1] == 0

    def _tdd_aligned(self) -> bool:
        if not self._has_tdd or not self._tdd_synced or not self._tx_cyclic or self._tx_current is None:
            return False
        gate = [self._values[AttrKey(_TDD_DEV, "output", f"channel{k}", "enable")] for k in (1, 2)]
        return self._values[AttrKey(_TDD_DEV, "device", "", "enable")] == "1" and gate == ["1", "1"]

    def _receive(self, tx: NDArray[np.complex128] | None, start: int, n: int,
                 overflow: tuple[int | None, int] | None) -> NDArray[np.complexfloating]:
        """The echo for one read, spliced around ``lost`` samples where an overflow was injected."""
        if overflow is None:
            return self._echo(tx, start, n)
        at, lost = overflow
        at = n // 2 if at is None else min(at, n)
        parts = [self._echo(tx, start, at), self._echo(tx, start + at, lost), self._echo(tx, start + at + lost, n - at)]
        kept = [np.atleast_2d(np.asarray(p)) for p in (parts[0], parts[2])]
        rows = max(k.shape[0] for k in kept)
        return np.concatenate([np.broadcast_to(k, (rows, k.shape[1])) for k in kept], axis=1)

    def _echo(self, tx: NDArray[np.complex128] | None, start: int, n: int) -> NDArray[np.complexfloating]:
        if n == 0:
            return np.zeros((1, 0), np.complex128)
        if self.stream_echo is not None:
            return np.asarray(self.stream_echo(tx, start, n))
        return np.asarray(self.echo(tx, n))

    def _open_buffer(self, conn: _Connection, device: str) -> _OpenBuffer:
        dev = self._find_device(device)
        buf = conn.buffers.get(dev.id)
        if buf is None:
            raise _IioError(errno.EBADF, f"{dev.label} not open on this connection")
        return buf

    def _settle_tx(self, reader: _Connection) -> None:
        """Wait until no TX-holding connection has unprocessed bytes (bounded)."""
        deadline = time.monotonic() + _SETTLE_S
        while time.monotonic() < deadline and not self._stop.is_set():
            with self._lock:
                writers = [
                    c
                    for c in self._connections
                    if c is not reader and not c.closed and any(b.device.is_output for b in c.buffers.values())
                ]
            if not any(c.busy or self._has_unread(c) for c in writers):
                return
            time.sleep(0.001)

    @staticmethod
    def _has_unread(conn: _Connection) -> bool:
        try:
            readable, _, _ = select.select([conn.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(readable)

    # -- sample conversion

    @staticmethod
    def _sample_dtype(chn: _Channel) -> tuple[np.dtype[np.integer], float]:
        length, bits, signed, big_endian = chn.sample_layout()
        if length not in (1, 2, 4, 8):
            raise _IioError(errno.EINVAL, f"sample length {length}")
        dtype = np.dtype(f"{'>' if big_endian else '<'}{'i' if signed else 'u'}{length}")
        return dtype, float(2 ** (bits - 1))

    def _decode(self, buf: _OpenBuffer, data: bytes) -> NDArray[np.complex128]:
        """Client TX bytes -> ``(num_tx_channels, n)`` complex in full-scale units."""
        n = len(data) // buf.sample_size
        raw = np.frombuffer(data[: n * buf.sample_size], dtype=np.uint8).reshape(n, buf.sample_size)
        out = np.zeros((buf.device.num_complex, n), dtype=np.complex128)
        offset = 0
        for chn in buf.channels:
            dtype, full_scale = self._sample_dtype(chn)
            offset += -offset % dtype.itemsize
            column = raw[:, offset : offset + dtype.itemsize].copy().view(dtype)[:, 0]
            offset += dtype.itemsize
            part = column.astype(np.float64) / full_scale
            out[chn.scan_index // 2] += part if chn.scan_index % 2 == 0 else 1j * part
        return out

    def _encode(self, buf: _OpenBuffer, rx: NDArray[np.complexfloating], num_samples: int) -> bytes:
        """Echo output -> the RX bytes for the enabled channels."""
        rows = np.atleast_2d(rx)
        if rows.ndim != 2 or rows.shape[1] != num_samples or rows.shape[0] > buf.device.num_complex:
            raise _IioError(
                errno.EIO, f"echo returned shape {np.shape(rx)}, want ({buf.device.num_complex}, {num_samples})"
            )
        out = bytearray(num_samples * buf.sample_size)
        view = np.frombuffer(out, dtype=np.uint8).reshape(num_samples, buf.sample_size)
        offset = 0
        for chn in buf.channels:
            dtype, full_scale = self._sample_dtype(chn)
            offset += -offset % dtype.itemsize
            k = chn.scan_index // 2
            row = rows[k] if k < rows.shape[0] else np.zeros(num_samples)
            part = np.real(row) if chn.scan_index % 2 == 0 else np.imag(row)
            lo, hi = (-full_scale, full_scale - 1) if dtype.kind == "i" else (0, 2 * full_scale - 1)
            codes = np.clip(np.round(np.nan_to_num(part.astype(np.float64)) * full_scale), lo, hi).astype(dtype)
            view[:, offset : offset + dtype.itemsize] = codes.view(np.uint8).reshape(num_samples, dtype.itemsize)
            offset += dtype.itemsize
        return bytes(out)

    # ------------------------------------------------------------ values

    def _sysfs_aliases(self) -> dict[AttrKey, list[AttrKey]]:
        """Channel attributes of one device backed by one sysfs file."""
        groups: dict[tuple[str, str], list[AttrKey]] = {}
        for dev in self._devices:
            for chn in dev.channels:
                for attr, filename in chn.attrs.items():
                    if filename:
                        groups.setdefault((dev.label, filename), []).append(AttrKey(dev.label, chn.kind, chn.id, attr))
        return {key: keys for keys in groups.values() for key in keys}

    def _store(self, key: AttrKey, value: str) -> None:
        for alias in self._aliases.get(key, [key]):
            self._values[alias] = value

    def _write_value(self, key: AttrKey, value: str) -> None:
        """Validate, format and store a client write, with the driver's side effects."""
        value = self._coerce(key, value)
        if key.kind == "debug" and key.attr == "direct_reg_access":
            self._reg_access(key.device, value)
        elif key.device == _TDD_DEV:
            self._tdd_write(key, value)
        elif key.device == _PHY and key.attr == "sampling_frequency" and key.kind in ("input", "output"):
            self._set_sample_rate(int(value))
        elif key.device == _PHY and key.channel == "out" and key.attr == "voltage_filter_fir_en":
            self._store(key, value)
            for kind in ("input", "output"):
                self._store(AttrKey(_PHY, kind, "voltage0", "filter_fir_en"), value)
        elif key.device == _PHY and key.kind == "device" and key.attr == "filter_fir_config":
            self._store(key, _fir_summary(value))
        else:
            self._store(key, value)

    def _reg_access(self, device: str, value: str) -> None:
        """debugfs ``direct_reg_access``: ``"ADDR"`` selects a register, ``"ADDR VAL"`` writes it (libiio's
        ``iio_device_reg_read``/``reg_write``); the DMA status register clears the bits written as 1."""
        words = value.split()
        try:
            numbers = [int(w, 0) for w in words]
        except ValueError:
            raise _IioError(errno.EINVAL, f"direct_reg_access {value!r}") from None
        if not 1 <= len(numbers) <= 2 or any(not 0 <= x < 2**32 for x in numbers):
            raise _IioError(errno.EINVAL, f"direct_reg_access {value!r}")
        self._reg_selected[device] = numbers[0]
        if len(numbers) == 2:
            key = (device, numbers[0])
            if numbers[0] == REG_DMA_STATUS:
                self._registers[key] = self._registers.get(key, 0) & ~numbers[1]
            else:
                self._registers[key] = numbers[1]

    def _tdd_write(self, key: AttrKey, value: str) -> None:
        """The TDD engine: ``_ms`` and ``_raw`` twins kept equal (its clock: the baseband rate), a soft sync."""
        try:
            number = float(value)
        except ValueError:
            raise _IioError(errno.EINVAL, f"{key.attr}={value!r} is not a number") from None
        if not np.isfinite(number) or number < 0:
            raise _IioError(errno.EINVAL, f"{key.attr}={value!r} must be >= 0")
        enabled = self._values[AttrKey(_TDD_DEV, "device", "", "enable")] == "1"
        if key.attr == "sync_soft":
            if number and enabled:
                self._tdd_synced = True
            self._store(key, "0")                          # self-clearing
            return
        if key.attr == "sync_internal" and number and enabled:
            self._tdd_synced = True
        if key.attr == "enable" and key.kind == "device":
            if not number:
                self._tdd_synced = False
            else:
                if self._values[AttrKey(_TDD_DEV, "device", "", "sync_internal")] == "1":
                    self._tdd_synced = True
                for k in self.tdd_latched:         # the channels' idle levels latch while the engine runs
                    self.tdd_latched[k] = int(self._values[AttrKey(_TDD_DEV, "output", f"channel{k}", "polarity")])
        if key.attr == "polarity" and enabled:
            self.tdd_latched[int(key.channel.removeprefix("channel"))] = int(number)
        clock_hz = float(self._values[AttrKey(_RX_DEV, "input", "voltage0", "sampling_frequency")])
        if key.attr.endswith("_ms"):
            self._store(key, f"{number:.6f}")
            self._store(key._replace(attr=key.attr[:-3] + "_raw"), str(int(round(number * clock_hz / 1e3))))
        elif key.attr.endswith("_raw"):
            self._store(key, str(int(number)))
            self._store(key._replace(attr=key.attr[:-4] + "_ms"), f"{int(number) * 1e3 / clock_hz:.6f}")
        else:
            self._store(key, str(int(number)))

    def _coerce(self, key: AttrKey, value: str) -> str:
        """The value as the driver would store it, or EINVAL where it would refuse it."""
        value = value.strip()
        available = self._values.get(key._replace(attr=key.attr + "_available"))
        if available is None or key.kind not in ("input", "output"):
            return value
        current = self._values.get(key, "")
        m = _RANGE_RE.match(available.strip())
        if m is None:
            choices = available.split()
            if current in choices and value not in choices:
                raise _IioError(errno.EINVAL, f"{key.attr}={value!r} not in {choices}")
            return value
        lo, step, hi = (float(x) for x in m.groups())
        if key.attr == "sampling_frequency":
            lo = min(lo, _SAMPLING_FREQUENCY_MIN)
        unit = " dB" if current.endswith(" dB") else ""
        number = value[: -len(unit)].strip() if unit and value.endswith(unit.strip()) else value
        integral = not unit and all(_INT_RE.match(x) for x in m.groups())
        try:
            if integral:
                if not _INT_RE.match(number):
                    raise ValueError(number)
                parsed: float = int(number)
            else:
                parsed = float(number)
        except ValueError:
            raise _IioError(errno.EINVAL, f"{key.attr}={value!r} is not a number") from None
        if key.attr == "rf_bandwidth" and parsed == parsed:
            parsed = min(max(parsed, lo), hi)    # the ad9361 driver clamps the analog filter, without an error
        if not lo <= parsed <= hi:  # also refuses NaN
            raise _IioError(errno.EINVAL, f"{key.attr}={value} outside [{lo}, {hi}]")
        if unit:
            if step > 0:
                parsed = lo + round((parsed - lo) / step) * step
            return f"{parsed:.6f}{unit}"
        return str(int(parsed)) if integral else value

    def _set_sample_rate(self, rate: int) -> None:
        """ad9361: one baseband rate for RX and TX; the data devices follow."""
        for key in list(self._values):
            if key.attr != "sampling_frequency" or key.kind not in ("input", "output"):
                continue
            if key.device == _PHY and key.channel.startswith("voltage"):
                self._values[key] = str(rate)
            elif key.device in (_RX_DEV, _TX_DEV):
                self._values[key] = str(rate)
                available = key._replace(attr="sampling_frequency_available")
                if available in self._values:
                    self._values[available] = f"{rate} {rate // 8} "
        for attr, prefix in (("rx_path_rates", "RXSAMP"), ("tx_path_rates", "TXSAMP")):
            key = AttrKey(_PHY, "device", "", attr)
            if key in self._values:
                self._values[key] = re.sub(rf"(\b(?:RF|TF|{prefix}):)\d+", rf"\g<1>{rate}", self._values[key])

    # ------------------------------------------------------------ helpers

    def _find_device(self, name: str) -> _Device:
        for dev in self._devices:
            if name in (dev.id, dev.name):
                return dev
        raise _IioError(errno.ENODEV, f"no device {name!r}")

    @staticmethod
    def _expect(args: list[str], least: int, most: int | None = None) -> None:
        if not least <= len(args) <= (least if most is None else most):
            raise _IioError(errno.EINVAL, f"wrong number of arguments: {args}")

    @staticmethod
    def _parse_count(word: str) -> int:
        if not word.isdigit():
            raise _IioError(errno.EINVAL, f"not a count: {word!r}")
        return int(word)

    _handlers: dict[str, Callable[[IiodServer, _Connection, list[str]], None]] = {
        "VERSION": _cmd_version,
        "PRINT": _cmd_print,
        "ZPRINT": _cmd_zprint,
        "HELP": _cmd_help,
        "TIMEOUT": _cmd_timeout,
        "GETTRIG": _cmd_gettrig,
        "SETTRIG": _cmd_settrig,
        "SET": _cmd_set,
        "READ": _cmd_read,
        "WRITE": _cmd_write,
        "OPEN": _cmd_open,
        "CLOSE": _cmd_close,
        "READBUF": _cmd_readbuf,
        "WRITEBUF": _cmd_writebuf,
    }


def _fir_summary(config: str) -> str:
    """What ad9361's filter_fir_config reads back after a FIR file is written."""
    rx_dec = tx_int = 1
    taps = 0
    for line in config.splitlines():
        words = line.replace(",", " ").split()
        upper = [w.upper() for w in words]
        if upper[:1] == ["RX"] and "DEC" in upper[:-1]:  # "RX 3 GAIN -6 DEC 4"
            rx_dec = _fir_factor(words[upper.index("DEC") + 1])
        elif upper[:1] == ["TX"] and "INT" in upper[:-1]:  # "TX 3 GAIN 0 INT 4"
            tx_int = _fir_factor(words[upper.index("INT") + 1])
        elif words and all(_INT_RE.match(w) for w in words):
            taps += 1
    if taps == 0:
        raise _IioError(errno.EINVAL, "FIR configuration without taps")
    return f"FIR Rx: {taps},{rx_dec} Tx: {taps},{tx_int}"


def _fir_factor(word: str) -> int:
    if word not in ("1", "2", "4"):
        raise _IioError(errno.EINVAL, f"FIR decimation/interpolation {word!r}")
    return int(word)
