"""ZeroMQ CURVE keys: create key pairs and apply them to sockets."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from sdr_isac.config import StreamConfig
from sdr_isac.errors import ConfigError

__all__ = ["create_keys", "secure_server", "secure_client"]


def create_keys(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` (secret, mode 0600) into ``directory``.

    Raises
    ------
    ConfigError
        The directory cannot be written, or the files exist already.
    """
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
        if public.exists() or secret.exists():
            raise ConfigError(f"{public}: key files for {name!r} exist already; choose another name or folder",
                              key="keys")
        with tempfile.TemporaryDirectory(dir=folder) as tmp:   # write aside, then move: never half a key pair
            made_public, made_secret = zmq.auth.create_certificates(tmp, name)
            os.chmod(made_secret, 0o600)
            Path(made_public).replace(public)
            Path(made_secret).replace(secret)
    except OSError as err:
        raise ConfigError(f"{folder}: cannot write key files ({err.strerror}); choose a writable folder",
                          key="keys") from err
    return public, secret


def _load(path: str, secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read a CURVE key file ({err}); create one with sdr-isac keys",
                          key="stream.curve") from err
    if secret and secret_key is None:
        raise ConfigError(f"{path}: holds no secret key; give the .key_secret file", key="stream.curve")
    return public, secret_key


def secure_server(socket: zmq.Socket, context: zmq.Context, cfg: StreamConfig) -> ThreadAuthenticator | None:
    """Make ``socket`` a CURVE server accepting only ``cfg.curve_allowed`` client keys (None without CURVE)."""
    if not cfg.curve_server_secret:
        return None
    public, secret = _load(cfg.curve_server_secret, secret=True)
    auth = ThreadAuthenticator(context)
    auth.start()
    folder = tempfile.mkdtemp(prefix="sdr-isac-allowed-")
    for i, path in enumerate(cfg.curve_allowed):
        client_public, _ = _load(path, secret=False)
        (Path(folder) / f"node{i}.key").write_text(
            "metadata\ncurve\n    public-key = \"" + client_public.decode() + "\"\n")
    auth.configure_curve(domain="*", location=folder)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return auth


def secure_client(socket: zmq.Socket, cfg: StreamConfig) -> None:
    """Give ``socket`` the node's CURVE keys and the host's public key (nothing without CURVE)."""
    if not cfg.curve_server_public:
        return
    server_public, _ = _load(cfg.curve_server_public, secret=False)
    if not cfg.curve_client_secret:
        raise ConfigError("stream.curve_client_secret is empty while the host uses CURVE: give the node's "
                          ".key_secret file", key="stream.curve_client_secret")
    public, secret = _load(cfg.curve_client_secret, secret=True)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = server_public
