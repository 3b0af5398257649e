"""Tests: the embedded broker keeps its port across restarts, and never runs without logins."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from coldchain.embedded import BrokerNeedsMosquittoError, EmbeddedBroker
from coldchain.settings import Settings
from coldchain.stack import open_stack
from gateway.credentials import set_password
from gateway.limits import PACKET_OVERHEAD_BYTES


def _settings(db_url: str, home: Path) -> Settings:
    """A configured database (this test's own) and the embedded broker under `home`."""
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    url = f"postgresql://{info['user']}@/{info['dbname']}?host={info['host']}"
    if info.get("port"):
        url += f"&port={info['port']}"
    return Settings(database_url=SecretStr(url), home=home)


def _broker_port(settings: Settings) -> int:
    with open_stack(settings, broker=True, apply_migrations=False) as stack:
        assert stack.broker is not None
        assert stack.embedded_broker is not None
        return stack.broker.port


def test_the_broker_port_is_kept_across_restarts(
    db_url: str, server_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(db_url, server_tmp / "home")
    first = _broker_port(settings)
    assert _broker_port(settings) == first, "devices reconnect to the port they were given"

    # Another program took the port meanwhile: the broker moves, and says so.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", first))
        squatter.listen()
        with caplog.at_level(logging.WARNING, logger="coldchain.stack"):
            moved = _broker_port(settings)
    assert moved != first
    assert any(f"port {first}" in r.getMessage() and str(moved) in r.getMessage() for r in caplog.records)
    assert _broker_port(settings) == moved


def test_a_broker_with_logins_is_mosquitto_or_nothing(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    set_password(passwd, "gateway", "pw")
    broker = EmbeddedBroker(tmp_path / "mqtt", use_binary=False, password_file=passwd)
    with pytest.raises(BrokerNeedsMosquittoError, match="needs mosquitto"):
        broker.start()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", broker.port), timeout=1)


def test_the_broker_packet_cap_follows_the_gateway_payload_setting(db_url: str, server_tmp: Path) -> None:
    """A raised COLDCHAIN_GATEWAY_MAX_PAYLOAD_BYTES raises the embedded broker's packet cap with it, so
    the broker never refuses what the gateway is configured to take."""
    base = _settings(db_url, server_tmp / "home")
    settings = base.model_copy(update={"gateway_max_payload_bytes": 4 << 20})
    with open_stack(settings, broker=True, apply_migrations=False) as stack:
        assert stack.embedded_broker is not None
        conf = (stack.embedded_broker.home / "mosquitto.conf").read_text()
    assert f"max_packet_size {(4 << 20) + PACKET_OVERHEAD_BYTES}" in conf.splitlines()
