"""Nothing is lost across a short outage of our own connection (the broker stays up).

The direct transport connects with QoS 1, a persistent session (clean session off) and a
client id that stays the same, so the broker keeps our subscription while we are away
and queues what the PBX publishes meanwhile. The test cuts only our connection (a TCP
relay between us and Mosquitto drops it and refuses reconnects for ~3 s) while the
simulated PBX keeps publishing CDRs and events; after the reconnect every one arrives,
exactly once, in order.
"""

from __future__ import annotations

import asyncio
import time

from homeassistant.const import CONF_PORT, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant

from custom_components.smartpbx.const import EVENT_CDR, EVENT_IVR_DTMF

from .broker import MosquittoBroker
from .integration_helpers import (  # noqa: F401
    SmartPbxFactory,
    real_broker_fixture,
    runtime,
    smartpbx_fixture,
    unload_integration,
)
from .reliability_helpers import BusRecorder, TcpProxy, eventually

OUTAGE = 3.0
CDRS = 30
KEYPRESSES = 10
STATUS_8001 = "sensor.extension_8001_status"
CALLS_TODAY = "sensor.spx1004o4s_calls_today"


async def test_events_published_while_we_are_away_all_arrive_once(
    hass: HomeAssistant, real_broker: MosquittoBroker, smartpbx: SmartPbxFactory
) -> None:
    async with TcpProxy(real_broker) as proxy:
        entry, runner = await smartpbx(data={CONF_PORT: proxy.port})
        data = runtime(entry)
        assert not data.transport.clean_session  # type: ignore[attr-defined]
        bus = BusRecorder(hass, [EVENT_CDR, EVENT_IVR_DTMF])
        calls_before = int(hass.states.get(CALLS_TODAY).state)

        await proxy.cut()
        await eventually(lambda: not data.transport.connected)
        assert hass.states.get(STATUS_8001).state == STATE_UNAVAILABLE

        # The PBX carries on: CDRs and IVR key presses, spread over the outage.
        callids = [f"1672401300.{index}" for index in range(CDRS)]
        sent_while_away = time.monotonic()
        for index, callid in enumerate(callids):
            runner.emit_cdr("8001", "8002", callid=callid, billsec=index)
            if index < KEYPRESSES:
                runner.ivr_keypress("9000", "8003", str(index), callid=f"1672401400.{index}")
            await asyncio.sleep(OUTAGE / CDRS)
        await runner.wait_drained()  # the broker has them all (and queued them for us)
        assert not data.transport.connected
        assert bus.events == []

        await proxy.resume()
        await eventually(lambda: data.transport.connected, limit=15)
        back_after = time.monotonic() - sent_while_away
        await eventually(lambda: len(bus.of(EVENT_CDR)) >= CDRS)
        await eventually(lambda: len(bus.of(EVENT_IVR_DTMF)) >= KEYPRESSES)
        await hass.async_block_till_done()

        # Every one, once, in the order the PBX published them.
        assert [event["callid"] for event in bus.of(EVENT_CDR)] == callids
        assert [event["dtmf"] for event in bus.of(EVENT_IVR_DTMF)] == [
            str(index) for index in range(KEYPRESSES)
        ]
        assert int(hass.states.get(CALLS_TODAY).state) == calls_before + CDRS
        await eventually(lambda: hass.states.get(STATUS_8001).state == "idle")
        assert data.client.stats.events_received == CDRS + KEYPRESSES
        assert proxy.connections == 2  # one reconnect, no reload
        print(f"outage of our connection: back {back_after:.2f} s after the first lost event")
        bus.stop()
        # Unloaded before the relay goes: its end would be one more outage.
        await unload_integration(hass, entry)
