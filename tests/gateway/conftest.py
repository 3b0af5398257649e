"""Tests: the gateway tests' fixtures: started gateways of the test's own on the shared broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gateway.config import BrokerAddress
from gateway.pipeline import GatewayService
from tests.gateway_support import gateway_service


@pytest.fixture
def start_gateway(db_url: str, mqtt_broker: BrokerAddress) -> Iterator[Callable[..., GatewayService]]:
    """Start a gateway of this test's own with `gateway_service`'s settings; each is stopped after."""
    started: list[GatewayService] = []

    def start(**kw: Any) -> GatewayService:
        svc = gateway_service(db_url, mqtt_broker, **kw)
        svc.start()
        started.append(svc)
        return svc

    yield start
    for svc in reversed(started):
        svc.stop()


@pytest.fixture
def gateway(start_gateway: Callable[..., GatewayService]) -> GatewayService:
    """A started gateway (own client id, no shared subscription)."""
    return start_gateway()
