"""ZeroMQ CURVE keys: create key pairs, apply them to sockets, count refusals, explain failed handshakes.

With CURVE on (``stream.curve_server_secret`` at the host), the host's PULL socket admits the node keys of
``stream.curve_allowed`` (ZAP domain ``nodes``) and its PUB socket the subscriber keys of
``stream.curve_subscribers_allowed`` (ZAP domain ``subscribers``).  One ZAP handler per host
(:class:`CountingAuthenticator`) counts and logs every refusal per socket, mechanism and client key
(:class:`Refusals`, bounded).  A client (node or subscriber) watches its own handshakes
(:class:`HandshakeWatch`) and, when they keep failing, raises a :class:`~sdr_isac.errors.ConfigError` that
names the likely cause.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from sdr_isac.config import StreamConfig
from sdr_isac.errors import ConfigError
from sdr_isac.recording._atomic import fsync_dir

__all__ = ["create_keys", "secure_server", "secure_client", "Refusals", "CountingAuthenticator", "HandshakeWatch",
           "describe_handshake_failure"]

_log = logging.getLogger(__name__)
#: Distinct (socket, mechanism, client key, reason) entries kept by :class:`Refusals`; the rest share one.
MAX_REFUSAL_ENTRIES = 256
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                     zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


#: a key pair's NAME: a plain file name (no folder, not hidden)
_KEY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def create_keys(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` (secret, mode 0600) into ``directory``.

    Both files are made in a private folder and then put in place exclusively (a hard link, or an exclusive
    create where the file system has no links): an existing file is never overwritten, even one made
    meanwhile by another process, and a failure leaves neither file of this call behind.

    Raises
    ------
    ConfigError
        ``name`` is not a plain file name, the directory cannot be written, or a file exists already.
    """
    if not isinstance(name, str) or not _KEY_NAME.fullmatch(name):
        raise ConfigError(f"--name = {name!r}: allowed 1 ... 64 characters from A-Z a-z 0-9 _ . -, not starting "
                          "with . or - (a file name in the folder, no path); choose such a name", key="keys")
    folder = Path(directory)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    placed: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:   # made in a private folder, then placed
            made_public, made_secret = zmq.auth.create_certificates(tmp, name)
            os.chmod(made_secret, 0o600)
            for made, final in ((Path(made_secret), secret), (Path(made_public), public)):
                _place_exclusively(made, final)
                placed.append(final)
        fsync_dir(folder)
    except FileExistsError as err:
        _remove(placed)
        raise ConfigError(f"{err.filename or public}: key files for {name!r} exist already; choose another name "
                          "or folder", key="keys") from err
    except OSError as err:
        _remove(placed)
        raise ConfigError(f"{folder}: cannot write key files ({err.strerror}); choose a writable folder",
                          key="keys") from err
    except BaseException:
        _remove(placed)
        raise
    return public, secret


def _place_exclusively(made: Path, final: Path) -> None:
    """Put the finished file ``made`` at ``final``, which must not exist (FileExistsError): a hard link (atomic
    and exclusive), or, where the file system has none, an exclusive create and a copy of the bytes."""
    with open(made, "rb") as fh:
        data = fh.read()
        os.fsync(fh.fileno())
    try:
        os.link(made, final)
        return
    except FileExistsError as err:
        raise FileExistsError(err.errno, err.strerror, str(final)) from err
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
    fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, os.stat(made).st_mode & 0o777)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        final.unlink(missing_ok=True)
        raise


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def _z85_key(text: bytes | None) -> bool:
    """True for a CURVE key as a key file holds it: 40 Z85 characters (32 bytes)."""
    if not isinstance(text, bytes) or len(text) != 40:
        return False
    try:
        return len(z85.decode(text)) == 32
    except (ValueError, KeyError, IndexError, TypeError, struct.error):
        return False


def _load(path: str, secret: bool, key: str = "stream.curve") -> tuple[bytes, bytes | None]:
    """The public (and secret) key of the key file ``path`` named by the setting ``key``; checked to be 40-character
    Z85 keys, and a secret file that others may read is logged."""
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{key} = {path!r}: cannot read a CURVE key file ({err}); create one with sdr-isac keys",
                          key=key) from err
    if not _z85_key(public):
        raise ConfigError(f"{key} = {path!r}: its public-key {public!r} is not a CURVE key (allowed 40 Z85 "
                          "characters); the file is damaged or not made by sdr-isac keys: create a new pair", key=key)
    if secret:
        if secret_key is None:
            raise ConfigError(f"{key} = {path!r}: holds no secret key; give the NAME.key_secret file", key=key)
        if not _z85_key(secret_key):
            raise ConfigError(f"{key} = {path!r}: its secret-key is not a CURVE key (allowed 40 Z85 characters); "
                              "the file is damaged: create a new pair with sdr-isac keys", key=key)
        with contextlib.suppress(OSError):
            mode = os.stat(path).st_mode
            if mode & 0o077:
                _log.warning("%s = %s: the secret key file may be read by others (mode %o); chmod 600 it", key, path,
                             mode & 0o777)
    return public, secret_key


class Refusals:
    """Refused connections, counted per (socket, mechanism, client key, reason); thread-safe, bounded memory.

    Each new entry and each count of 10, 100, 1000, ... is logged (logger ``sdr_isac.stream.security``) as a
    warning.  Beyond :data:`MAX_REFUSAL_ENTRIES` distinct entries, refusals are counted in one entry per
    socket with the client key ``(other keys)``.
    """

    def __init__(self, max_entries: int = MAX_REFUSAL_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str, str], int] = {}
        self._max_entries = max_entries
        self.total = 0

    def add(self, socket: str, mechanism: str, client_key: str, reason: str) -> int:
        """Count one refusal; returns the count of its entry."""
        key = (socket, mechanism, client_key, reason)
        with self._lock:
            if key not in self._counts and len(self._counts) >= self._max_entries:
                key = (socket, "*", "(other keys)", "*")
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
            self.total += 1
        if count == 1 or str(count).rstrip("0") == "1":
            _log.warning("refused a %s connection on the %s socket (client key %s): %s (%d so far)",
                         mechanism, socket, client_key or "-", reason, count)
        return count

    def to_dict(self) -> dict[str, Any]:
        """``total`` and ``by_client``: one object per entry (socket, mechanism, client_key, reason, count)."""
        with self._lock:
            entries = sorted(self._counts.items(), key=lambda kv: -kv[1])
            return {"total": self.total,
                    "by_client": [{"socket": k[0], "mechanism": k[1], "client_key": k[2], "reason": k[3], "count": n}
                                  for k, n in entries]}


class CountingAuthenticator(ThreadAuthenticator):
    """pyzmq's ZAP handler (a thread) that also counts every refusal in a :class:`Refusals`.

    The ZAP domain of a socket names it in the counts: ``nodes`` (the PULL socket), ``subscribers`` (PUB).
    """

    def __init__(self, context: zmq.Context, refusals: Refusals) -> None:
        super().__init__(context, log=logging.getLogger(__name__ + ".zap"))
        self.refusals = refusals
        self._request = ("", "", "")

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        domain = msg[2].decode("utf-8", "replace") if len(msg) > 2 else ""
        mechanism = msg[5].decode("ascii", "replace") if len(msg) > 5 else ""
        key = ""
        if mechanism == "CURVE" and len(msg) == 7 and len(msg[6]) == 32:
            key = z85.encode(msg[6]).decode("ascii")
        self._request = (domain or "*", mechanism or "?", key)
        await super().handle_zap_message(msg)

    def _send_zap_reply(self, request_id: bytes, status_code: bytes, status_text: bytes,
                        user_id: str = "anonymous") -> None:
        if status_code != b"200":
            domain, mechanism, key = self._request
            reason = status_text.decode("utf-8", "replace")
            hint = {"nodes": "not in stream.curve_allowed", "subscribers": "not in stream.curve_subscribers_allowed"}
            self.refusals.add(domain, mechanism, key, f"{reason} ({hint[domain]})" if domain in hint else reason)
        super()._send_zap_reply(request_id, status_code, status_text, user_id)


def secure_server(socket: zmq.Socket, context: zmq.Context, cfg: StreamConfig, *, domain: str = "nodes",
                  allowed: tuple[str, ...] | None = None, refusals: Refusals | None = None,
                  auth: CountingAuthenticator | None = None) -> CountingAuthenticator | None:
    """Make ``socket`` a CURVE server admitting only the client keys of ``allowed`` (None without CURVE).

    Parameters
    ----------
    socket : zmq.Socket
        Not yet bound.
    context : zmq.Context
        The socket's context (the ZAP handler serves one context).
    cfg : StreamConfig
        ``curve_server_secret`` (empty: no CURVE, returns None) and, by default, ``curve_allowed``.
    domain : str
        ZAP domain of this socket: ``nodes`` or ``subscribers`` (names it in the refusal counts).
    allowed : tuple of str, optional
        Public key files of the clients admitted (default ``cfg.curve_allowed``; empty admits none).
    refusals : Refusals, optional
        Where a new ZAP handler counts refusals.
    auth : CountingAuthenticator, optional
        The ZAP handler already running on ``context`` (a host's second socket); else one is started.

    Returns
    -------
    CountingAuthenticator or None
        The ZAP handler (stop it after closing the socket), or None without CURVE.
    """
    if not cfg.curve_server_secret:
        return None
    # every key is read and checked before the ZAP thread starts: a bad file leaves nothing running
    public, secret = _load(cfg.curve_server_secret, secret=True, key="stream.curve_server_secret")
    listed = "stream.curve_allowed" if domain == "nodes" else "stream.curve_subscribers_allowed"
    keys = {_load(path, secret=False, key=f"{listed}[{i}]")[0]: True
            for i, path in enumerate(cfg.curve_allowed if allowed is None else allowed)}
    started = auth is None
    if auth is None:
        auth = CountingAuthenticator(context, refusals if refusals is not None else Refusals())
        auth.start()
    try:
        auth.certs[domain] = keys
        socket.zap_domain = domain.encode()
        socket.curve_secretkey = secret
        socket.curve_publickey = public
        socket.curve_server = True
    except BaseException:
        if started:
            auth.stop()
        raise
    return auth


def describe_handshake_failure(event: int, value: int) -> str:
    """A socket monitor's handshake failure in words (``event`` a ``zmq.EVENT_HANDSHAKE_FAILED_*``)."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"refused by the ZAP handler (status {value})"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            return "security mechanism mismatch (CURVE on one side only)"
        if value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
            return "cryptographic error (the client does not have the server's public key)"
        return f"protocol error {value:#x}"
    return "failed without detail (a wrong server key, or the peer went away)"


def _telling(failure: tuple[int, int]) -> int:
    """How much a handshake failure says about its cause: 2 a refused key, 1 a protocol error, 0 no detail."""
    scores: dict[int, int] = {int(zmq.EVENT_HANDSHAKE_FAILED_AUTH): 2, int(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL): 1}
    return scores.get(failure[0], 0)


class HandshakeWatch:
    """Watches the handshakes of a client socket (node PUSH, subscriber SUB) with a ZeroMQ socket monitor.

    :meth:`check` raises a :class:`~sdr_isac.errors.ConfigError` that names the likely cause when handshakes
    have failed and none succeeded for ``give_up_s`` seconds.  Create it before connecting; :meth:`close`
    it before closing the socket.

    Parameters
    ----------
    socket : zmq.Socket
    cfg : StreamConfig or None
        The client's CURVE settings (None: no CURVE).
    endpoint : str
        Where the socket connects, for the message.
    role : str
        ``node`` or ``subscriber``: which of the host's allowed-key lists the message names.
    give_up_s : float
        Seconds of failing handshakes, without a success, before :meth:`check` raises.
    """

    def __init__(self, socket: zmq.Socket, cfg: StreamConfig | None, endpoint: str, role: str,
                 give_up_s: float) -> None:
        self._socket = socket
        self._monitor: zmq.Socket | None = socket.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        self.cfg = cfg
        self.endpoint = endpoint
        self.role = role
        self.give_up_s = give_up_s
        self.succeeded = 0
        self.failed = 0
        self.failing_since: float | None = None
        self.last_failure: tuple[int, int] | None = None

    def poll(self) -> None:
        """Take the monitor's pending events (non-blocking)."""
        monitor = self._monitor
        while monitor is not None and monitor.poll(0):
            event = recv_monitor_message(monitor, flags=zmq.NOBLOCK)
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.succeeded += 1
                self.failing_since = None
            elif event["event"] in _HANDSHAKE_FAILED:
                self.failed += 1
                failure = (int(event["event"]), int(event["value"]))
                # keep the most telling failure seen: a refused key (AUTH) or a mechanism mismatch says more than
                # a connection that went away without detail, whichever came last under load
                if self.last_failure is None or _telling(failure) >= _telling(self.last_failure):
                    self.last_failure = failure
                if self.failing_since is None:
                    self.failing_since = time.monotonic()

    def check(self, *, final: bool = False) -> None:
        """Raise the explanation when handshakes kept failing for ``give_up_s`` (``final``: at all, by now)."""
        self.poll()
        if self.failing_since is None:
            return
        if final or time.monotonic() - self.failing_since >= self.give_up_s:
            text, key = self._explanation()
            raise ConfigError(text, key=key)

    def explain(self) -> str:
        """What went wrong, and the likely fix."""
        return self._explanation()[0]

    def _explanation(self) -> tuple[str, str]:
        """:meth:`explain`'s text and the setting it blames (the key of the ConfigError)."""
        event, value = self.last_failure or (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 0)
        what = describe_handshake_failure(event, value)
        curve = self.cfg is not None and bool(self.cfg.curve_server_public)
        allowed = "stream.curve_allowed" if self.role == "node" else "stream.curve_subscribers_allowed"
        head = (f"the host at {self.endpoint} refused this {self.role}: {self.failed} handshake(s) failed, none "
                f"succeeded in {self.give_up_s:g} s ({what})")
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH and self.cfg is not None:
            key = _load(self.cfg.curve_client_secret, secret=False, key="stream.curve_client_secret")[0].decode() \
                if self.cfg.curve_client_secret else "?"
            return (f"{head}: this {self.role}'s public key {key} (of stream.curve_client_secret = "
                    f"{self.cfg.curve_client_secret}) is probably not in the host's {allowed}; add its NAME.key "
                    "there, or give this side a key the host allows", "stream.curve_client_secret")
        if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            if not curve:
                return (f"{head}: the host uses CURVE and this {self.role} does not; set stream.curve_server_public "
                        "(the host's NAME.key) and stream.curve_client_secret (this side's NAME.key_secret, whose "
                        f"public key is in the host's {allowed})", "stream.curve_server_public")
            return (f"{head}: this {self.role} uses CURVE and the host does not; give the host its "
                    "curve_server_secret, or remove curve_server_public and curve_client_secret here",
                    "stream.curve_server_public")
        if curve:
            server = self.cfg.curve_server_public if self.cfg is not None else ""
            return (f"{head}: stream.curve_server_public = {server} is probably not the host's public key (the "
                    "host could not read this side's greeting); copy the NAME.key beside the host's "
                    "curve_server_secret", "stream.curve_server_public")
        return f"{head}: check that the host's security settings match this side's", "stream.curve_server_public"

    def close(self) -> None:
        """Stop monitoring (before the socket closes)."""
        if self._monitor is not None:
            try:
                self._socket.disable_monitor()
            except zmq.ZMQError:
                pass
            self._monitor.close(linger=0)
            self._monitor = None


def secure_client(socket: zmq.Socket, cfg: StreamConfig) -> None:
    """Give ``socket`` the node's CURVE keys and the host's public key (nothing without CURVE)."""
    if not cfg.curve_server_public:
        return
    server_public, _ = _load(cfg.curve_server_public, secret=False, key="stream.curve_server_public")
    if not cfg.curve_client_secret:
        raise ConfigError("stream.curve_client_secret is empty while the host uses CURVE: give the node's "
                          ".key_secret file", key="stream.curve_client_secret")
    public, secret = _load(cfg.curve_client_secret, secret=True, key="stream.curve_client_secret")
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = server_public
