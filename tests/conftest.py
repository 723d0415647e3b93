"""Shared fixtures: a real Mosquitto broker, and custom integrations enabled."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

# pytest-homeassistant-custom-component puts its own testing_config/custom_components
# first on the import path; import ours now so Home Assistant loads this project's code.
from custom_components.smartpbx import button, event, sensor
from smartpbx_sim import FirmwareProfile

from . import integration_helpers
from .broker import MosquittoBroker
from .integration_helpers import test_timing_fixture  # noqa: F401


@pytest.fixture(autouse=True)
def auto_test_timing(test_timing: None) -> None:
    """Short command timeouts and no polling unless a test asks (integration_helpers)."""


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components.smartpbx in every test."""


@pytest.fixture
def extension_extras_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Create the per-extension entities that are disabled by default as enabled:
    current peer, hang-up button and incoming-call event."""
    monkeypatch.setattr(
        sensor,
        "EXTENSION_SENSORS",
        tuple(
            replace(description, entity_registry_enabled_default=True)
            for description in sensor.EXTENSION_SENSORS
        ),
    )
    monkeypatch.setattr(
        button, "HANG_UP", replace(button.HANG_UP, entity_registry_enabled_default=True)
    )
    monkeypatch.setattr(
        event,
        "EXTENSION_INCOMING_CALL",
        replace(event.EXTENSION_INCOMING_CALL, entity_registry_enabled_default=True),
    )


@pytest.fixture(params=list(FirmwareProfile), ids=str)
def sim_profile(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> FirmwareProfile:
    """The firmware the simulator plays: each integration test runs once per profile.

    Requested by ``real_broker`` (so by the ``smartpbx`` fixture too); the helpers that
    start a simulator (``start_simulator``, ``setup_integration``, ``setup_over_ha_mqtt``)
    give its config this profile unless the test chose one itself.
    """
    profile = FirmwareProfile(request.param)
    monkeypatch.setattr(integration_helpers, "SIM_PROFILE", profile)
    return profile


@pytest.fixture(scope="session")
def _session_broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker() as running:
        yield running


@pytest.fixture
def broker(socket_enabled: None, _session_broker: MosquittoBroker) -> MosquittoBroker:
    """One anonymous Mosquitto shared by the session; do not stop it in a test.

    Depends on ``socket_enabled``: phcc blocks sockets in every test unless asked.
    """
    return _session_broker


@pytest.fixture
def private_broker(socket_enabled: None) -> Iterator[MosquittoBroker]:
    """A Mosquitto of the test's own, which the test may stop and start."""
    with MosquittoBroker() as running:
        yield running


@pytest.fixture
def broker_factory(socket_enabled: None) -> Iterator[Callable[..., MosquittoBroker]]:
    """Make brokers with options (e.g. users={"pbx": "secret"}); all closed afterwards."""
    made: list[MosquittoBroker] = []

    def make(**kwargs: object) -> MosquittoBroker:
        instance = MosquittoBroker(**kwargs)  # type: ignore[arg-type]
        instance.start()
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.close()
