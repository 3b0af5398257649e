"""Tests: the gateway tests' fixtures: a started gateway of the test's own on the shared broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.config import BrokerAddress
from gateway.pipeline import GatewayService
from tests.gateway_support import gateway_service


@pytest.fixture
def gateway(db_url: str, mqtt_broker: BrokerAddress) -> Iterator[GatewayService]:
    """A gateway of this test's own (own client id, no shared subscription), started; stopped after."""
    svc = gateway_service(db_url, mqtt_broker)
    svc.start()
    yield svc
    svc.stop()
