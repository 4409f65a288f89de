"""CURVE key files: names, exclusive creation without half pairs, checked keys, the setting each error names."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
import zmq

from sdr_isac import config
from sdr_isac.errors import ConfigError
from sdr_isac.stream import security
from sdr_isac.stream.security import HandshakeWatch, create_keys, secure_client, secure_server


@pytest.mark.parametrize("name", ["../escaped", "", ".", "..", ".hidden", "-x", "a/b", "x\0y", "a" * 65, 3])
def test_a_key_name_must_be_a_plain_file_name(tmp_path: Path, name: object) -> None:
    with pytest.raises(ConfigError, match=r"^--name = .*: allowed 1 \.\.\. 64 characters"):
        create_keys(tmp_path / "keys", name)  # type: ignore[arg-type]
    assert not (tmp_path / "escaped.key").exists() and not (tmp_path / "keys").exists()


def test_a_failed_second_file_leaves_no_half_pair_and_a_retry_works(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real = security._place_exclusively
    calls = []

    def full_disk(made: Path, final: Path) -> None:
        calls.append(final)
        if final.suffix == ".key":                            # the public file, after the secret one
            raise OSError(28, "No space left on device", str(final))
        real(made, final)

    monkeypatch.setattr(security, "_place_exclusively", full_disk)
    with pytest.raises(ConfigError, match=r"cannot write key files \(No space left on device\)"):
        create_keys(tmp_path, "n")
    assert [p.name for p in calls] == ["n.key_secret", "n.key"] and sorted(os.listdir(tmp_path)) == []
    monkeypatch.setattr(security, "_place_exclusively", real)
    public, secret = create_keys(tmp_path, "n")                 # the retry is not refused
    assert secret.stat().st_mode & 0o777 == 0o600 and public.exists()


def test_a_pair_made_meanwhile_is_never_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process writes n.key between the existence check a writer would make and the write: the
    exclusive placement refuses, and the other process's file is kept as it was."""
    real = security._place_exclusively

    def racing(made: Path, final: Path) -> None:
        if final.suffix == ".key":
            final.write_text("the other process's key\n")
        real(made, final)

    monkeypatch.setattr(security, "_place_exclusively", racing)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(tmp_path / 'n.key'))}: key files for 'n' exist already"):
        create_keys(tmp_path, "n")
    assert (tmp_path / "n.key").read_text() == "the other process's key\n"
    assert not (tmp_path / "n.key_secret").exists()             # this call's own file is removed


def test_placing_without_hard_links_is_still_exclusive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(1, "Operation not permitted")             # a file system without hard links

    monkeypatch.setattr(os, "link", no_links)
    public, secret = create_keys(tmp_path, "n")
    assert secret.stat().st_mode & 0o777 == 0o600
    assert zmq.auth.load_certificate(str(secret))[0] == zmq.auth.load_certificate(str(public))[0]
    with pytest.raises(ConfigError, match="exist already"):
        create_keys(tmp_path, "n")


def _stream(**fields: object) -> config.StreamConfig:
    return config.from_dict(config.Config, {"stream": fields}).stream


@pytest.mark.parametrize("text", ['public-key = "abc"', 'public-key = "' + "~" * 40 + '"',
                                  'public-key = "' + "#" * 40 + '"'])      # Z85 characters whose group overflows
def test_a_damaged_key_file_is_refused_naming_the_setting(tmp_path: Path, text: str) -> None:
    public, secret = create_keys(tmp_path, "host")
    bad = tmp_path / "bad.key"
    bad.write_text(f"metadata\ncurve\n    {text}\n")
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    try:
        with pytest.raises(ConfigError, match=r"^stream\.curve_allowed\[1\] = .*bad\.key.*not a CURVE key "
                                              r"\(allowed 40 Z85 characters\)"):
            secure_server(sock, ctx, _stream(curve_server_secret=str(secret), curve_server_public=str(public),
                                             curve_allowed=[str(public), str(bad)]))
        with pytest.raises(ConfigError, match=r"^stream\.curve_server_public = .*not a CURVE key"):
            secure_client(sock, _stream(curve_server_public=str(bad), curve_client_secret=str(secret)))
        broken_secret = tmp_path / "broken.key_secret"
        broken_secret.write_text(secret.read_text().replace('secret-key = "', 'secret-key = "x'))
        with pytest.raises(ConfigError, match=r"^stream\.curve_server_secret = .*secret-key is not a CURVE key"):
            secure_server(sock, ctx, _stream(curve_server_secret=str(broken_secret), curve_server_public=str(public),
                                             curve_allowed=[str(public)]))
    finally:
        sock.close(linger=0)


def test_a_bad_server_key_starts_no_authenticator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key is checked before the ZAP thread starts; a socket option that fails stops the thread it started."""
    public, secret = create_keys(tmp_path, "host")
    started = []
    monkeypatch.setattr(security.CountingAuthenticator, "start", lambda self: started.append(self))
    stopped = []
    monkeypatch.setattr(security.CountingAuthenticator, "stop", lambda self: stopped.append(self))
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    try:
        with pytest.raises(ConfigError):
            secure_server(sock, ctx, _stream(curve_server_secret=str(secret), curve_server_public=str(public),
                                             curve_allowed=[str(tmp_path / "none")]))
        assert started == []
        sock.close(linger=0)                                      # a closed socket refuses its options
        with pytest.raises(zmq.ZMQError):
            secure_server(sock, ctx, _stream(curve_server_secret=str(secret), curve_server_public=str(public),
                                             curve_allowed=[str(public)]))
        assert len(started) == 1 and stopped == started
    finally:
        sock.close(linger=0)


def test_a_secret_key_others_may_read_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, secret = create_keys(tmp_path, "node")
    secret.chmod(0o644)
    sock = zmq.Context.instance().socket(zmq.PUSH)
    try:
        with caplog.at_level(logging.WARNING, logger="sdr_isac.stream.security"):
            secure_client(sock, _stream(curve_server_public=str(tmp_path / "node.key"), curve_client_secret=str(secret)))
    finally:
        sock.close(linger=0)
    assert any("may be read by others (mode 644); chmod 600" in r.getMessage() for r in caplog.records)


def test_the_handshake_error_names_the_setting_to_change(tmp_path: Path) -> None:
    _, secret = create_keys(tmp_path, "node")
    sock = zmq.Context.instance().socket(zmq.PUSH)
    try:
        cfg = _stream(curve_server_public=str(tmp_path / "node.key"), curve_client_secret=str(secret))
        watch = HandshakeWatch(sock, cfg, "tcp://127.0.0.1:1", "node", 0.0)
        for failure, key in (((zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400), "stream.curve_client_secret"),
                             ((zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 0), "stream.curve_server_public")):
            watch.failing_since, watch.last_failure, watch.failed = 0.0, failure, 3
            with pytest.raises(ConfigError) as err:
                watch.check(final=True)
            assert err.value.key == key, (failure, err.value.key)
        watch.close()
    finally:
        sock.close(linger=0)
