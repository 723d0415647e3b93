"""Bad input from the broker: arbitrary bytes and wrongly shaped JSON on every PBX topic.

Whatever arrives on the response, event, CDR and status topics, nothing raises into
Home Assistant (no error is logged: the library drops what it cannot read), no entity
takes a value outside its domain or is created, entities that events do not concern do
not change at all, and the warnings about dropped messages are rate-limited. Replies to
request ids nobody awaits are ignored; oversized payloads are dropped before decoding.

Hypothesis feeds the transport's message callback directly (the exact entry point of
every broker message), so that it can shrink a failure; a sample of the same inputs then
goes over the real broker from the simulated PBX's own connection.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
import json
import logging
import time
from typing import Any
from unittest.mock import patch

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant, State
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.smartpbx.const import DOMAIN, EVENT_UNKNOWN
from custom_components.smartpbx.pbx.client import MAX_PAYLOAD_BYTES
from custom_components.smartpbx.pbx.topics import base_topic

from .integration_helpers import (  # noqa: F401
    SMALL_PBX,
    SmartPbxFactory,
    real_broker_fixture,
    runtime,
    smartpbx_fixture,
)
from .reliability_helpers import BusRecorder, entry_states, eventually

BASE = base_topic(SMALL_PBX.token) + "/"
KINDS = ("response", "event", "cdr", "status")
ONE_MEGABYTE = b"{" + b" " * (1024 * 1024) + b"}"

# --- what the PBX might send ----------------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
"""Any JSON value (NaN and infinities included, which the decoder refuses)."""

TEMPLATES: dict[str, list[dict[str, Any]]] = {
    "event": [
        {"event": "extension_status", "extension": "8001", "status": "Busy", "ipaddr": "sip:x"},
        {"event": "invite", "from": "8002", "to": "8001", "callid": "1672401220.7"},
        {"event": "ivrdtmf", "ivr": "9000", "caller": "8003", "dtmf": "5", "callid": "1.2"},
    ],
    "cdr": [
        {
            "event": "cdr",
            "callid": "1672401220.8",
            "src": "8001",
            "srctech": "PJSIP/8001-00000001",
            "dst": "8002",
            "dsttech": "PJSIP/8002-00000002",
            "start": "2022-12-30 11:53:40",
            "end": "2022-12-30 11:53:55",
            "billsec": "15",
            "disposition": "ANSWERED",
            "direction": "Internal",
            "recordfile": "",
        }
    ],
    "response": [
        {"status": "Success", "message": "success", "request_id": "not-ours"},
        {"status": "Failed", "message": "extension is not existing"},
        {
            "status": "Success",
            "deviceinfo": {"devicename": "X", "sn": "Y", "firmwarever": "1", "uptime": "5"},
        },
        {"status": "Success", "extlist": [{"number": "8001", "status": "Idle"}]},
        {"status": "Success", "queue": "6666", "params": {"strategy": "ringall"}},
    ],
    "status": [{"status": "online"}],
}


def _wrongly_shaped(template: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The template with fields dropped, replaced by any JSON value, or added."""
    fields = st.fixed_dictionaries(
        {},
        optional={key: st.just(value) | json_values for key, value in template.items()},
    )
    extra = st.dictionaries(st.text(max_size=8), json_values, max_size=2)
    return st.builds(lambda known, more: {**more, **known}, fields, extra)


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def payloads(kind: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        json_values.map(_encode),
        st.sampled_from(TEMPLATES[kind]).flatmap(_wrongly_shaped).map(_encode),
    )


messages = st.sampled_from(KINDS).flatmap(lambda kind: st.tuples(st.just(kind), payloads(kind)))

# --- what no entity may ever show -----------------------------------------------------------

_NEVER_CHANGED = ("_trunk_", "_queue_", "_conference_", "_last_boot")
"""Entities no event can concern: their state must not move at all."""


def _assert_valid(state: State) -> None:
    value = state.state
    if value in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        return
    attributes = state.attributes
    if options := attributes.get("options"):
        assert value in options, state
    elif state.domain == "binary_sensor":
        assert value in ("on", "off"), state
    elif attributes.get("device_class") == "timestamp" or state.domain in ("event", "button"):
        datetime.fromisoformat(value)
        if state.domain == "event":
            assert attributes["event_type"] in attributes["event_types"], state
    elif "state_class" in attributes or "unit_of_measurement" in attributes:
        float(value)
    assert len(value) <= 255, state


async def test_fuzzed_messages_never_raise_nor_corrupt_entities(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, caplog: pytest.LogCaptureFixture
) -> None:
    entry, _ = await smartpbx()
    data = runtime(entry)
    transport = data.transport
    deliver: Callable[[str, bytes], None] = transport._dispatch  # type: ignore[attr-defined]
    before = entry_states(hass, entry.entry_id)
    extensions = set(data.system.data.extensions)
    unique_ids = {
        state.entity_id: unique_id
        for unique_id, state in (
            (hass.data["entity_registry"].async_get(entity_id).unique_id, state)
            for entity_id, state in before.items()
        )
    }
    caplog.clear()
    started = time.monotonic()
    delivered = 0

    @settings(
        database=None,
        max_examples=400,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(messages)
    def deliver_one(message: tuple[str, bytes]) -> None:
        nonlocal delivered
        kind, payload = message
        deliver(BASE + kind, payload)  # the transport's callback: must not raise
        delivered += 1
        current = entry_states(hass, entry.entry_id)
        assert set(current) == set(before)  # nothing created, nothing removed
        for entity_id, state in current.items():
            _assert_valid(state)
            if any(part in unique_ids[entity_id] for part in _NEVER_CHANGED):
                if not data.pbx_online:
                    # The status topic's "offline" concerns every entity: unavailable.
                    assert state.state == STATE_UNAVAILABLE, entity_id
                    continue
                assert (state.state, state.attributes) == (
                    before[entity_id].state,
                    before[entity_id].attributes,
                ), entity_id
        assert set(data.system.data.extensions) == extensions

    deliver_one()
    await hass.async_block_till_done()
    took = time.monotonic() - started

    ours = [r for r in caplog.records if r.name.startswith("custom_components.smartpbx")]
    # Nothing reached the catch-alls (an exception in parsing or in a listener).
    assert not [r for r in ours if r.levelno >= logging.ERROR], ours
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # One warning per topic kind (and one for unattributable replies) per minute at most.
    warnings = [r for r in ours if r.levelno == logging.WARNING]
    assert len(warnings) <= len(KINDS) + 1 + int(took // 60) * (len(KINDS) + 1), warnings
    assert data.client.stats.malformed_dropped > delivered // 10
    # No request stranded by fuzzed replies. A poll may be in flight when the fuzzing ends
    # (a loaded machine makes it last past a poll interval): the simulator answers it.
    await eventually(lambda: data.client.pending_count == 0)
    # Still in working order.
    response = await hass.services.async_call(
        DOMAIN, "get_queue_status", {"queue": "6666"}, blocking=True, return_response=True
    )
    assert response is not None
    assert response["queue"] == "6666"
    print(f"fuzz: {delivered} messages in {took:.1f} s, {len(warnings)} warnings logged")


@pytest.mark.parametrize("kind", KINDS)
async def test_bad_input_over_the_broker(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """Garbage and a 1 MB payload through the broker; a sentinel proves they were read."""
    entry, runner = await smartpbx()
    data = runtime(entry)
    unknown = BusRecorder(hass, [EVENT_UNKNOWN])
    samples: list[bytes] = []

    @settings(database=None, max_examples=40, deadline=None)
    @given(payloads(kind))
    def collect(payload: bytes) -> None:
        samples.append(payload)

    collect()
    if kind == "event":
        # What once made this test flaky, every time: a status word nobody knows.
        samples.append(b'{"event": "extension_status", "extension": "8001", "status": 0}')
    status_before = {
        number: state
        for number in runner.pbx.extensions
        if (state := hass.states.get(f"sensor.extension_{number}_status")) is not None
    }
    assert "8001" in status_before
    caplog.clear()
    for payload in [ONE_MEGABYTE, *samples, b"\xff\xfe\x00", b"[]", b'"text"', b"null"]:
        runner.publish_raw(kind, payload)
    if kind == "status":
        # Garbage may say "offline", which the integration believes: the last word counts.
        runner.publish_raw(kind, b'{"status": "online"}')
    runner.publish_raw("event", b'{"event": "sentinel"}')
    await eventually(lambda: [e["event"] for e in unknown.of(EVENT_UNKNOWN)][-1:] == ["sentinel"])

    assert data.client.stats.oversized_dropped == 1
    oversized = [r for r in caplog.records if "larger than" in r.getMessage()]
    assert len(oversized) == 1
    assert oversized[0].levelno == logging.WARNING
    # The rest of this kind's garbage is counted, not logged (rate limit: once a minute).
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name.startswith("custom_components.smartpbx")
    ]
    assert len(warnings) <= 2, warnings  # the kind's, and one for unattributable replies
    # (The status topic's payload is undocumented: any UTF-8 text is accepted there.)
    assert data.client.stats.malformed_dropped >= (1 if kind == "status" else 4)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # A wrongly shaped status event can still be a status event (the parser is tolerant:
    # an unknown status word reads as unknown): the extensions the samples name may have
    # changed, within their sensor's options; the others are untouched.
    for number, before in status_before.items():
        after = hass.states.get(before.entity_id)
        assert after is not None
        if any(number.encode() in sample for sample in samples):
            assert after.state in {*before.attributes["options"], STATE_UNKNOWN}, after
        else:
            assert (after.state, after.attributes) == (before.state, before.attributes), number
    response = await hass.services.async_call(
        DOMAIN, "get_live_calls", {}, blocking=True, return_response=True
    )
    assert response == {"calls": []}
    unknown.stop()


async def test_replies_to_unknown_request_ids_are_ignored(
    hass: HomeAssistant, smartpbx: SmartPbxFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Before every real reply the PBX sends a Failed one for an id nobody asked with."""
    entry, runner = await smartpbx()
    data = runtime(entry)
    pbx = runner.pbx
    handle = pbx.handle_command

    def reply_twice(sub_topic: str, payload: bytes | str) -> None:
        for request_id in ("not-ours", "", "00"):
            pbx.send_response(
                {"status": "Failed", "message": "impostor", "request_id": request_id or "x"}
            )
        handle(sub_topic, payload)

    pbx.handle_command = reply_twice  # type: ignore[method-assign]
    caplog.clear()
    unmatched = data.client.stats.unmatched_replies

    response = await hass.services.async_call(
        DOMAIN, "get_queue_status", {"queue": "6666"}, blocking=True, return_response=True
    )

    assert response is not None
    assert response["queue"] == "6666"
    assert data.client.stats.unmatched_replies == unmatched + 3
    # Expected on a shared broker (another client's replies): not worth a warning.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_oversized_payloads_are_dropped_unread(
    hass: HomeAssistant, smartpbx: SmartPbxFactory
) -> None:
    entry, _ = await smartpbx()
    data = runtime(entry)
    deliver: Callable[[str, bytes], None] = data.transport._dispatch  # type: ignore[attr-defined]
    payload = b"x" * (MAX_PAYLOAD_BYTES + 1)

    with patch("custom_components.smartpbx.pbx.client.loads") as loads:
        started = time.perf_counter()
        for _ in range(1000):
            for kind in KINDS:
                deliver(BASE + kind, ONE_MEGABYTE)
        took = time.perf_counter() - started
        deliver(BASE + "event", payload)
    loads.assert_not_called()
    assert data.client.stats.oversized_dropped == 4001
    # 4000 one-megabyte messages: a length check each, no copy, no decoding.
    assert took < 0.5, took
