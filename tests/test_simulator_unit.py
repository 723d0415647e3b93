"""Unit tests of the simulated PBX's pure layer (no broker, no event loop, no sleeping)."""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import random
import re
from typing import Any

import pytest

from smartpbx_sim import (
    Disposition,
    ExtStatus,
    FirmwareProfile,
    PbxConfig,
    PbxError,
    Quirks,
    SimulatedPbx,
    TrafficGenerator,
)
from smartpbx_sim.wire import COMMAND_TOPICS, FIELD_COMMANDS, hms

TOKEN = "tok123"
BASE = f"device/{TOKEN}/api/v1.0"


@dataclass
class Wire:
    """A PBX plus everything it published, decoded; the test's view of the broker."""

    pbx: SimulatedPbx
    out: list[tuple[str, bytes]] = field(default_factory=list)
    _rid: int = 0

    @classmethod
    def make(cls, **config: Any) -> Wire:
        config.setdefault("token", TOKEN)
        wire = cls(SimulatedPbx(PbxConfig(**config)))
        wire.pbx.publish = lambda topic, payload: wire.out.append((topic, payload))
        return wire

    def take(self) -> list[tuple[str, Any]]:
        """Messages published since the last take, as (kind, decoded JSON)."""
        taken = [(t.removeprefix(BASE + "/"), json.loads(p)) for t, p in self.out]
        self.out.clear()
        return taken

    def send(self, sub: str, payload: bytes | str | dict[str, Any]) -> list[tuple[str, Any]]:
        self.out.clear()
        raw = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        self.pbx.handle_command(sub, raw)
        return self.take()

    def cmd(self, sub: str, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send a command with a fresh request_id; return its one reply."""
        self._rid += 1
        rid = f"rid-{self._rid}"
        messages = self.send(sub, {"cmd": cmd, "request_id": rid, **fields})
        replies = [m for kind, m in messages if kind == "response"]
        assert len(replies) == 1, messages
        reply: dict[str, Any] = replies[0]
        assert reply["request_id"] == rid
        return reply

    def events(self, messages: list[tuple[str, Any]], name: str | None = None) -> list[Any]:
        return [m for k, m in messages if k == "event" and (name is None or m["event"] == name)]


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["status"] == "Success", reply
    return reply


def failed(reply: dict[str, Any], message: str | None = None) -> dict[str, Any]:
    assert reply["status"] == "Failed", reply
    assert isinstance(reply["message"], str)
    assert reply["message"]
    if message is not None:
        assert reply["message"] == message
    return reply


@pytest.fixture
def wire() -> Wire:
    return Wire.make()


def registered(pbx: SimulatedPbx, kind: str) -> list[str]:
    return [n for n, e in pbx.extensions.items() if e.kind == kind and e.available]


def unregistered_sip(pbx: SimulatedPbx) -> str:
    return next(n for n, e in pbx.extensions.items() if not e.available)


# ---------------------------------------------------------------------- system


def test_topics_are_full_names(wire: Wire) -> None:
    wire.pbx.handle_command("system", b'{"cmd": "deviceInfo", "request_id": "x"}')
    assert [t for t, _ in wire.out] == [f"{BASE}/response"]
    assert wire.pbx.command_filter == f"{BASE}/command/#"


def test_device_info(wire: Wire) -> None:
    reply = ok(wire.cmd("system", "deviceInfo"))
    info = reply["deviceinfo"]
    assert info["devicename"] == "SPX1004O4S"
    assert info["sn"] == "XR18132110000787"
    assert info["firmwarever"] == "0.0.1-beta-20220610"
    assert info["systemtime"] == "Fri Dec 30 11:53:40 2022"
    assert info["uptime"] == "49:03:10"
    assert reply["message"] == "success"
    wire.pbx.advance(3600 + 61)
    assert wire.cmd("system", "deviceInfo")["deviceinfo"]["uptime"] == "50:04:11"


def test_systemtime_pads_single_digit_day_like_ctime() -> None:
    wire = Wire.make(start_time=1654256243.0)  # 2022-06-03 11:37:23 UTC
    assert wire.cmd("system", "deviceInfo")["deviceinfo"]["systemtime"] == (
        "Fri Jun  3 11:37:23 2022"
    )


def test_extension_list(wire: Wire) -> None:
    reply = ok(wire.cmd("system", "extension_list"))
    extlist = reply["extlist"]
    assert len(extlist) == 16
    sip, fxs = extlist[:12], extlist[12:]
    assert [e["number"] for e in sip] == [str(8001 + i) for i in range(12)]
    assert [e["number"] for e in fxs] == [str(2001 + i) for i in range(4)]
    assert all(e["type"] == "SIP" and "port" not in e for e in sip)
    assert [e["port"] for e in fxs] == ["1", "2", "3", "4"]
    assert all(e["type"] == "FXS" for e in fxs)
    statuses = {e["status"] for e in sip}
    assert statuses == {"Idle", "Unavailable"}
    assert sip[0]["status"] == "Idle"  # the first SIP phone is always registered
    assert all(isinstance(e["username"], str) for e in extlist)


def test_blank_fxs_names_exist_in_a_larger_office() -> None:
    wire = Wire.make(fxs_extensions=16)
    fxs = [e for e in wire.cmd("system", "extension_list")["extlist"] if e["type"] == "FXS"]
    assert any(e["username"] == "" for e in fxs)
    assert any(e["username"] for e in fxs)


def test_trunk_list(wire: Wire) -> None:
    reply = ok(wire.cmd("system", "trunk_list"))
    trunks = reply["trunklist"]
    sip = [t for t in trunks if t["type"] == "SIP"]
    fxo = [t for t in trunks if t["type"] == "FXO"]
    assert len(sip) == 2
    assert len(fxo) == 4
    for trunk in sip:
        assert set(trunk) == {"status", "name", "type"}
        assert re.fullmatch(r"SIP_[A-Za-z]{6}", trunk["name"])
    assert [t["port"] for t in fxo] == ["1", "2", "3", "4"]
    assert [t["name"] for t in fxo] == ["FXO-1", "FXO-2", "FXO-3", "FXO-4"]
    assert fxo[0]["status"] == "Idle"
    for trunk in fxo:
        assert isinstance(trunk["vbat"], int)
        if trunk["status"] == "Idle":
            assert 48 <= trunk["vbat"] <= 52
        else:
            assert trunk["status"] == "Disconnected"
            assert trunk["vbat"] in (0, 1)


def test_livecall_empty_then_one_call(wire: Wire) -> None:
    assert ok(wire.cmd("system", "livecall"))["livecall"] == []
    callid = ok(wire.cmd("call", "dial", caller="8001", callee="2001"))["callid"]
    wire.pbx.advance(1)
    (call,) = wire.cmd("system", "livecall")["livecall"]
    assert call == {
        "caller": "8001",
        "source": call["source"],
        "called": "2001",
        "destination": "FXS/1",
        "duration": "00:00:01",
        "callid": callid,
        "state": "Ringing",
        "direction": "Internal",
        "recording": "no",
    }
    assert re.fullmatch(r"PJSIP/8001-[0-9a-f]{8}", call["source"])
    wire.pbx.advance(1)
    (call,) = wire.cmd("system", "livecall")["livecall"]
    assert call["state"] == "Up"
    assert call["duration"] == "00:00:02"


# ---------------------------------------------------------------------- dial / hangup


def test_dial_emits_reply_then_events_and_answers_after_delay(wire: Wire) -> None:
    messages = wire.send(
        "call", {"cmd": "dial", "request_id": "d1", "caller": "8001", "callee": "2002"}
    )
    kinds = [k for k, _ in messages]
    assert kinds == ["response", "event", "event", "event"]
    reply = messages[0][1]
    assert reply == {
        "status": "Success",
        "message": "success",
        "callid": reply["callid"],
        "request_id": "d1",
    }
    assert re.fullmatch(r"\d{10}\.\d+", reply["callid"])
    assert reply["callid"].startswith("1672401220.")
    caller, callee, invite = (m for _, m in messages[1:])
    assert caller["extension"] == "8001"
    assert caller["status"] == "InUse"
    assert re.fullmatch(r"sip:8001@192\.168\.8\.\d+:\d+", caller["ipaddr"])
    assert callee == {"event": "extension_status", "extension": "2002", "status": "Ringing"}
    assert invite == {"event": "invite", "from": "8001", "to": "2002", "callid": reply["callid"]}
    wire.pbx.advance(1.9)
    assert wire.take() == []
    wire.pbx.advance(0.1)
    assert wire.take() == [
        ("event", {"event": "extension_status", "extension": "2002", "status": "InUse"})
    ]


def test_dial_autoanswer_answers_at_once(wire: Wire) -> None:
    messages = wire.send(
        "call",
        {"cmd": "dial", "request_id": "a", "caller": "2001", "callee": "2002", "autoanswer": "yes"},
    )
    statuses = [(m["extension"], m["status"]) for m in wire.events(messages, "extension_status")]
    assert statuses == [("2001", "InUse"), ("2002", "Ringing"), ("2002", "InUse")]
    assert wire.pbx.calls[messages[0][1]["callid"]].state == "Up"


def test_answer_delay_zero_answers_synchronously() -> None:
    wire = Wire.make(answer_delay=0)
    callid = wire.cmd("call", "dial", caller="8001", callee="2001")["callid"]
    assert wire.pbx.calls[callid].state == "Up"


def test_callids_are_unique_and_increasing(wire: Wire) -> None:
    first = wire.cmd("call", "dial", caller="8001", callee="2001")["callid"]
    second = wire.cmd("call", "dial", caller="2002", callee="2003")["callid"]
    assert first != second
    assert int(second.split(".")[1]) == int(first.split(".")[1]) + 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"caller": "1234", "callee": "2001"}, "caller is not existing"),
        ({"caller": "8001", "callee": "1234"}, "callee is not existing"),
        ({"caller": "8001", "callee": "8001"}, "caller and callee are the same"),
        ({"callee": "2001"}, "caller is required"),
        ({"caller": "8001"}, "callee is required"),
        ({"caller": 8001, "callee": "2001"}, "caller is invalid"),
        ({"caller": "8001", "callee": ""}, "callee is required"),
    ],
)
def test_dial_failures(wire: Wire, fields: dict[str, Any], message: str) -> None:
    failed(wire.cmd("call", "dial", **fields), message)
    assert not wire.pbx.calls


def test_dial_unregistered_extensions_fail(wire: Wire) -> None:
    offline = unregistered_sip(wire.pbx)
    failed(wire.cmd("call", "dial", caller="8001", callee=offline), "callee is unavailable")
    failed(wire.cmd("call", "dial", caller=offline, callee="8001"), "caller is unavailable")


def test_dial_from_busy_caller_fails(wire: Wire) -> None:
    ok(wire.cmd("call", "dial", caller="8001", callee="2001"))
    failed(wire.cmd("call", "dial", caller="8001", callee="2002"), "caller is busy")


def test_dial_busy_callee_gives_busy_cdr(wire: Wire) -> None:
    ok(wire.cmd("call", "dial", caller="8001", callee="2001"))
    messages = wire.send(
        "call", {"cmd": "dial", "request_id": "b", "caller": "2002", "callee": "2001"}
    )
    reply = messages[0][1]
    ok(reply)
    statuses = [(m["extension"], m["status"]) for m in wire.events(messages, "extension_status")]
    assert statuses == [("2002", "InUse"), ("2002", "Idle")]
    (cdr,) = [m for k, m in messages if k == "cdr"]
    assert cdr["disposition"] == "BUSY"
    assert cdr["callid"] == reply["callid"]
    assert cdr["billsec"] == "0"
    assert reply["callid"] not in wire.pbx.calls


def test_dial_external_from_extension_goes_out_a_trunk(wire: Wire) -> None:
    callid = ok(wire.cmd("call", "dial", caller="8001", callee="+4930123456"))["callid"]
    (call,) = wire.cmd("system", "livecall")["livecall"]
    assert call["callid"] == callid
    assert call["direction"] == "Outbound"
    assert re.fullmatch(r"PJSIP/SIP_[A-Za-z]{6}-[0-9a-f]{8}", call["destination"])


def test_dial_from_queue_or_ivr_to_external_needs_dialpermission(wire: Wire) -> None:
    failed(
        wire.cmd("call", "dial", caller="6666", callee="+861235432341231"),
        "dialpermission is required",
    )
    failed(
        wire.cmd("call", "dial", caller="9000", callee="0612345678", dialpermission="1234"),
        "dialpermission is not existing",
    )
    reply = ok(
        wire.cmd("call", "dial", caller="6666", callee="+861235432341231", dialpermission="8001")
    )
    call = wire.pbx.calls[reply["callid"]]
    assert call.caller == "6666"
    assert call.source.startswith("Local/6666@")
    assert call.direction == "Outbound"


def test_dial_from_ivr_or_queue_to_extension_needs_no_permission(wire: Wire) -> None:
    ok(wire.cmd("call", "dial", caller="9000", callee="2001"))
    ok(wire.cmd("call", "dial", caller="6666", callee="2002"))


def test_permission_limits_outbound_calls(wire: Wire) -> None:
    ok(wire.cmd("cfg", "extension_set", extension="2001", params={"permission": "2"}))
    failed(wire.cmd("call", "dial", caller="2001", callee="+4930123456"), "permission denied")
    failed(wire.cmd("call", "dial", caller="2001", callee="0298765432"), "permission denied")
    ok(wire.cmd("call", "dial", caller="2001", callee="5551234"))


def test_no_trunk_available() -> None:
    wire = Wire.make(sip_trunks=0, fxo_trunks=1)
    ok(wire.cmd("call", "dial", caller="8001", callee="5551234"))
    failed(wire.cmd("call", "dial", caller="2001", callee="5551234"), "no trunk available")


def test_dial_into_ivr_and_conference(wire: Wire) -> None:
    ivr_call = ok(wire.cmd("call", "dial", caller="8001", callee="9000"))["callid"]
    assert wire.pbx.calls[ivr_call].state == "Up"
    ok(wire.cmd("call", "dial", caller="2001", callee="7001"))
    (member,) = wire.cmd("conf", "conf_status", conf="7001")["members"]
    assert member["callerid"] == "2001"
    assert member["channel"] == "FXS/1"


def test_hangup_ends_call_with_events_and_cdr(wire: Wire) -> None:
    callid = wire.cmd("call", "dial", caller="8001", callee="2001")["callid"]
    wire.pbx.advance(2)
    wire.pbx.advance(10)
    wire.take()
    messages = wire.send("call", {"cmd": "hangup", "request_id": "h", "callid": callid})
    assert messages[0] == (
        "response",
        {"status": "Success", "message": "Channel Hungup", "request_id": "h"},
    )
    statuses = [(m["extension"], m["status"]) for m in wire.events(messages, "extension_status")]
    assert statuses == [("8001", "Idle"), ("2001", "Idle")]
    (cdr,) = [m for k, m in messages if k == "cdr"]
    assert cdr == {
        "event": "cdr",
        "callid": callid,
        "src": "8001",
        "srctech": cdr["srctech"],
        "dst": "2001",
        "dsttech": "FXS/1",
        "start": "2022-12-30 11:53:40",
        "end": "2022-12-30 11:53:52",
        "billsec": "10",
        "disposition": "ANSWERED",
        "direction": "Internal",
        "dtmf": "",
        "recordfile": "",
    }
    assert cdr["srctech"].startswith("PJSIP/8001-")
    assert not wire.pbx.calls
    assert wire.pbx.extension_status("8001") is ExtStatus.IDLE


def test_hangup_before_answer_is_no_answer(wire: Wire) -> None:
    callid = wire.cmd("call", "dial", caller="8001", callee="2001")["callid"]
    messages = wire.send("call", {"cmd": "hangup", "request_id": "h", "callid": callid})
    (cdr,) = [m for k, m in messages if k == "cdr"]
    assert cdr["disposition"] == "NO ANSWER"
    assert cdr["billsec"] == "0"


def test_hangup_by_channelid(wire: Wire) -> None:
    callid = wire.cmd("call", "dial", caller="2001", callee="2002")["callid"]
    ok(wire.cmd("call", "hangup", channelid="FXS/2"))
    assert callid not in wire.pbx.calls


def test_hangup_failures(wire: Wire) -> None:
    failed(wire.cmd("call", "hangup", callid="1672030725.7987"), "Channel not found")
    failed(wire.cmd("call", "hangup"), "callid is required")


def test_unanswered_call_times_out_with_no_answer() -> None:
    wire = Wire.make(answer_delay=None, ring_timeout=30)
    callid = wire.cmd("call", "dial", caller="8001", callee="2001")["callid"]
    wire.pbx.advance(29)
    assert callid in wire.pbx.calls
    wire.pbx.advance(1)
    messages = wire.take()
    (cdr,) = [m for k, m in messages if k == "cdr"]
    assert cdr["disposition"] == "NO ANSWER"
    assert callid not in wire.pbx.calls


# ---------------------------------------------------------------------- listen


def test_listen(wire: Wire) -> None:
    target = wire.cmd("call", "dial", caller="8001", callee="2001", autoanswer="yes")["callid"]
    reply = ok(wire.cmd("call", "listen", monitor="2004", extension="2001", type="whisper"))
    spy = reply["callid"]
    assert spy != target
    assert reply["message"] == "success"
    assert wire.pbx.extension_status("2004") is ExtStatus.IN_USE
    assert wire.pbx.calls[spy].destination == "FXS/1"
    wire.take()
    ok(wire.cmd("call", "hangup", callid=target))
    # The spy session ends with the call it listens to.
    assert spy not in wire.pbx.calls
    assert wire.pbx.extension_status("2004") is ExtStatus.IDLE


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"monitor": "2004", "extension": "2002", "type": "listen"}, "extension is not in a call"),
        ({"monitor": "2004", "extension": "2001", "type": "spy"}, "type is invalid"),
        ({"monitor": "1234", "extension": "2001", "type": "barge"}, "monitor is not existing"),
        ({"monitor": "2004", "extension": "1234", "type": "barge"}, "extension is not existing"),
        ({"monitor": "2004", "extension": "2001"}, "type is required"),
    ],
)
def test_listen_failures(wire: Wire, fields: dict[str, Any], message: str) -> None:
    ok(wire.cmd("call", "dial", caller="8001", callee="2001"))
    failed(wire.cmd("call", "listen", **fields), message)


def test_listen_types_accepted(wire: Wire) -> None:
    ok(wire.cmd("call", "dial", caller="8001", callee="2001"))
    for kind, monitor in (("listen", "2002"), ("whisper", "2003"), ("barge", "2004")):
        ok(wire.cmd("call", "listen", monitor=monitor, extension="2001", type=kind))


# ---------------------------------------------------------------------- scripted calls


def test_incoming_call_over_fxo(wire: Wire) -> None:
    callid = wire.pbx.incoming_call("0612345678", "2003", trunk="FXO-1")
    messages = wire.take()
    assert wire.events(messages, "invite") == [
        {"event": "invite", "from": "0612345678", "to": "2003", "callid": callid}
    ]
    (call,) = wire.cmd("system", "livecall")["livecall"]
    assert call["direction"] == "Inbound"
    assert call["source"] == "FXO/1"
    assert call["destination"] == "FXS/3"
    fxo1 = next(t for t in wire.cmd("system", "trunk_list")["trunklist"] if t["name"] == "FXO-1")
    assert fxo1["status"] == "InUse"
    assert fxo1["vbat"] < 20
    wire.pbx.hangup_call(callid)
    fxo1 = next(t for t in wire.cmd("system", "trunk_list")["trunklist"] if t["name"] == "FXO-1")
    assert fxo1["status"] == "Idle"
    assert fxo1["vbat"] >= 48


def test_incoming_call_to_unavailable_extension_fails(wire: Wire) -> None:
    wire.pbx.incoming_call("5551234", unregistered_sip(wire.pbx))
    (cdr,) = [m for k, m in wire.take() if k == "cdr"]
    assert cdr["disposition"] == "FAILED"
    assert cdr["direction"] == "Inbound"
    with pytest.raises(PbxError):
        wire.pbx.incoming_call("5551234", "1234")


def test_ivr_keypress_on_live_ivr_call(wire: Wire) -> None:
    callid = wire.pbx.incoming_call("5551234", "9000")
    wire.take()
    assert wire.pbx.ivr_keypress("9000", "5551234", "5") == callid
    wire.pbx.ivr_keypress("9000", "5551234", "1")
    events = wire.events(wire.take(), "ivrdtmf")
    assert events[0] == {
        "event": "ivrdtmf",
        "ivr": "9000",
        "caller": "5551234",
        "dtmf": "5",
        "callid": callid,
    }
    wire.pbx.hangup_call(callid)
    (cdr,) = [m for k, m in wire.take() if k == "cdr"]
    assert cdr["dtmf"] == "51"


def test_ivr_keypress_without_call_uses_fresh_or_given_id(wire: Wire) -> None:
    fresh = wire.pbx.ivr_keypress("9000", "2005", "5")
    assert re.fullmatch(r"\d+\.\d+", fresh)
    assert wire.pbx.ivr_keypress("9000", "2005", "7", callid="1673078689.147") == "1673078689.147"
    events = wire.events(wire.take(), "ivrdtmf")
    assert [e["callid"] for e in events] == [fresh, "1673078689.147"]


def test_emit_cdr(wire: Wire) -> None:
    payload = wire.pbx.emit_cdr("2001", "2002", billsec=10, disposition="ANSWERED")
    ((kind, cdr),) = wire.take()
    assert kind == "cdr"
    assert cdr == payload
    assert cdr["srctech"] == "FXS/1"
    assert cdr["billsec"] == "10"
    assert cdr["start"] == "2022-12-30 11:53:30"
    assert cdr["end"] == "2022-12-30 11:53:40"


def test_set_extension_status_and_burst(wire: Wire) -> None:
    wire.pbx.set_extension_status("2001", "Busy")
    assert wire.take() == [
        ("event", {"event": "extension_status", "extension": "2001", "status": "Busy"})
    ]
    # A busy (do-not-disturb) phone refuses calls.
    messages = wire.send("call", {"cmd": "dial", "caller": "2002", "callee": "2001"})
    ok(messages[0][1])
    assert any(k == "cdr" and m["disposition"] == "BUSY" for k, m in messages)
    wire.pbx.set_extension_status("2001", "Idle")
    wire.take()
    before = wire.pbx.published_counts["event"]
    assert wire.pbx.burst_extension_status(50) == 50
    assert len(wire.events(wire.take(), "extension_status")) == 50
    assert wire.pbx.published_counts["event"] == before + 50


def test_set_extension_status_unavailable_unregisters(wire: Wire) -> None:
    wire.pbx.set_extension_status("8001", ExtStatus.UNAVAILABLE)
    failed(wire.cmd("call", "dial", caller="8001", callee="2001"), "caller is unavailable")
    wire.pbx.set_extension_status("8001", ExtStatus.IDLE)
    ok(wire.cmd("call", "dial", caller="8001", callee="2001"))


def test_add_and_remove_extension(wire: Wire) -> None:
    ext = wire.pbx.add_extension(kind="FXS", username="Garage")
    assert ext.number == "2005"
    assert ext.port == 5
    sip = wire.pbx.add_extension()
    assert sip.number == "8013"
    numbers = [e["number"] for e in wire.cmd("system", "extension_list")["extlist"]]
    assert "2005" in numbers
    assert "8013" in numbers
    ok(wire.cmd("call", "dial", caller="2005", callee="8013"))
    wire.pbx.remove_extension("2005")
    assert not wire.pbx.calls
    numbers = [e["number"] for e in wire.cmd("system", "extension_list")["extlist"]]
    assert "2005" not in numbers
    with pytest.raises(ValueError, match="already in use"):
        wire.pbx.add_extension("9000")


def test_publish_raw_and_counters(wire: Wire) -> None:
    wire.pbx.publish_raw("event", b"not json at all")
    assert wire.out == [(f"{BASE}/event", b"not json at all")]
    wire.out.clear()
    wire.cmd("system", "deviceInfo")
    wire.pbx.emit_cdr()
    assert wire.pbx.published_counts == {"event": 1, "response": 1, "cdr": 1}
    assert [p.kind for p in wire.pbx.iter_history()] == ["event", "response", "cdr"]


def test_silent_pbx_neither_replies_nor_emits(wire: Wire) -> None:
    wire.pbx.silent = True
    wire.pbx.handle_command("system", b'{"cmd": "deviceInfo", "request_id": "s"}')
    wire.pbx.set_extension_status("2001", "Busy")
    assert wire.out == []
    assert wire.pbx.commands_ignored == 1
    assert wire.pbx.dropped_counts["event"] == 1
    wire.pbx.publish_raw("event", b"{}")  # explicit injection still goes out
    assert len(wire.out) == 1
    wire.pbx.silent = False
    ok(wire.cmd("system", "deviceInfo"))


def test_reboot_resets_uptime_and_drops_calls(wire: Wire) -> None:
    wire.cmd("call", "dial", caller="8001", callee="2001")
    wire.pbx.advance(65)
    wire.take()
    wire.pbx.reboot()
    assert wire.take() == []
    assert not wire.pbx.calls
    assert wire.cmd("system", "deviceInfo")["deviceinfo"]["uptime"] == "00:00:00"
    wire.pbx.advance(3)
    assert wire.cmd("system", "deviceInfo")["deviceinfo"]["uptime"] == "00:00:03"


def test_reboot_with_new_config_changes_extensions(wire: Wire) -> None:
    wire.pbx.reboot(PbxConfig(token=TOKEN, sip_extensions=3, fxs_extensions=0))
    numbers = [e["number"] for e in wire.cmd("system", "extension_list")["extlist"]]
    assert numbers == ["8001", "8002", "8003"]
    with pytest.raises(ValueError, match="token"):
        wire.pbx.reboot(PbxConfig(token="other"))


# ---------------------------------------------------------------------- queues


def test_queue_list(wire: Wire) -> None:
    reply = ok(wire.cmd("queue", "queue_list"))
    queues = reply["queuelist"]
    assert [q["number"] for q in queues] == ["6666", "6667"]
    for queue in queues:
        assert set(queue) == {"number", "description", "members", "strategy"}
        assert len(queue["members"].split(",")) == 3
        assert queue["strategy"] in ("ringall", "random", "roundrobin", "rrmemory")


def test_queue_status_shape(wire: Wire) -> None:
    reply = ok(wire.cmd("queue", "queue_status", queue="6666"))
    assert "message" not in reply  # as in the document's example
    assert reply["queue"] == "6666"
    assert set(reply["params"]) == {
        "max",
        "strategy",
        "calls",
        "holdtime",
        "talktime",
        "completed",
        "abandoned",
    }
    assert all(isinstance(v, str) for v in reply["params"].values())
    assert len(reply["members"]) == 3
    for member in reply["members"]:
        assert set(member) == {"agent", "status", "pused"}
        assert member["pused"] == "0"
        assert member["status"] in ("1", "5")  # not in use, or unavailable


def test_queue_add_remove_pause(wire: Wire) -> None:
    members = wire.cmd("queue", "queue_list")["queuelist"][0]["members"].split(",")
    new = next(n for n in ("2001", "2002", "2003", "2004") if n not in members)
    assert ok(wire.cmd("queue", "queue_add", queue="6666", extension=new))["message"] == (
        "Added interface to queue"
    )
    assert wire.cmd("queue", "queue_list")["queuelist"][0]["members"].split(",")[-1] == new
    failed(
        wire.cmd("queue", "queue_add", queue="6666", extension=new),
        "Unable to add interface: Already there",
    )
    reply = ok(wire.cmd("queue", "queue_paused", queue="6666", extension=new, paused="yes"))
    assert reply["message"] == "Interface paused successfully"
    status = wire.cmd("queue", "queue_status", queue="6666")
    assert next(m for m in status["members"] if m["agent"] == new)["pused"] == "1"
    reply = ok(wire.cmd("queue", "queue_paused", queue="6666", extension=new, paused="no"))
    assert reply["message"] == "Interface unpaused successfully"
    assert ok(wire.cmd("queue", "queue_remove", queue="6666", extension=new))["message"] == (
        "Remove interface to queue"
    )
    failed(
        wire.cmd("queue", "queue_remove", queue="6666", extension=new),
        "Unable to remove interface: Not there",
    )
    failed(
        wire.cmd("queue", "queue_paused", queue="6666", extension=new, paused="yes"),
        "Interface not found",
    )


@pytest.mark.parametrize(
    ("cmd", "fields", "message"),
    [
        ("queue_status", {"queue": "1"}, "queue is not existing"),
        ("queue_status", {}, "queue is required"),
        (
            "queue_add",
            {"queue": "1", "extension": "2001"},
            "Unable to add interface to queue: No such queue",
        ),
        ("queue_add", {"queue": "6666", "extension": "1234"}, "extension is not existing"),
        (
            "queue_remove",
            {"queue": "1", "extension": "2001"},
            "Unable to remove interface from queue: No such queue",
        ),
        ("queue_paused", {"queue": "6666", "extension": "2001", "paused": "maybe"}, None),
        ("queue_paused", {"queue": "1", "extension": "2001", "paused": "yes"}, None),
    ],
)
def test_queue_failures(wire: Wire, cmd: str, fields: dict[str, Any], message: str | None) -> None:
    failed(wire.cmd("queue", cmd, **fields), message)


def test_queue_call_reaches_an_agent_and_counts() -> None:
    wire = Wire.make(answer_delay=1)
    queue = wire.pbx.queues["6666"]
    agents = [m.agent for m in queue.members if wire.pbx.extensions[m.agent].available]
    callid = wire.pbx.incoming_call("5551234", "6666")
    assert wire.cmd("queue", "queue_status", queue="6666")["params"]["calls"] == "1"
    wire.take()
    wire.pbx.advance(1)
    messages = wire.take()
    (invite,) = wire.events(messages, "invite")
    assert invite["to"] in agents
    status = wire.cmd("queue", "queue_status", queue="6666")
    assert status["params"]["calls"] == "0"
    assert next(m for m in status["members"] if m["agent"] == invite["to"])["status"] == "2"
    wire.pbx.advance(20)
    wire.pbx.hangup_call(callid)
    params = wire.cmd("queue", "queue_status", queue="6666")["params"]
    assert params["completed"] == "1"
    assert params["abandoned"] == "0"
    assert params["talktime"] == "5"  # Asterisk's running average: (0 * 3 + 20) / 4
    assert params["max"] == "1"


def test_queue_call_abandoned_when_all_agents_paused(wire: Wire) -> None:
    for member in wire.pbx.queues["6666"].members:
        ok(wire.cmd("queue", "queue_paused", queue="6666", extension=member.agent, paused="yes"))
    callid = wire.pbx.incoming_call("5551234", "6666")
    wire.pbx.advance(10)
    assert wire.pbx.calls[callid].callee_ext is None
    wire.pbx.hangup_call(callid)
    params = wire.cmd("queue", "queue_status", queue="6666")["params"]
    assert params["abandoned"] == "1"
    assert params["calls"] == "0"


# ---------------------------------------------------------------------- conferences


def test_conf_list(wire: Wire) -> None:
    reply = ok(wire.cmd("conf", "conf_list"))
    rooms = reply["conflist"]
    assert [r["number"] for r in rooms] == ["7001", "7002"]
    for room in rooms:
        assert set(room) == {
            "description",
            "number",
            "moderators",
            "participantpassword",
            "allowinvite",
            "moderatorpassword",
            "waitformoderator",
        }
        assert room["allowinvite"] in ("yes", "no")
        assert room["waitformoderator"] in ("yes", "no")
        assert all(m in wire.pbx.extensions for m in room["moderators"].split(","))


def test_conference_invite_mute_kick(wire: Wire) -> None:
    reply = wire.cmd("conf", "conf_status", conf="7001")
    assert reply == {"status": "Success", "members": [], "conf": "7001", "request_id": "rid-1"}
    ok(wire.cmd("conf", "conf_invite", conf="7001", member="2003", dialpermission="8001"))
    assert wire.cmd("conf", "conf_status", conf="7001")["members"] == []  # still ringing
    wire.pbx.advance(2)
    (member,) = wire.cmd("conf", "conf_status", conf="7001")["members"]
    assert member == {
        "callerid": "2003",
        "channel": "FXS/3",
        "admin": "No",
        "markeduser": "No",
        "waitmarked": member["waitmarked"],
        "waiting": member["waiting"],
        "muted": "No",
        "talking": "No",
        "answeredtime": "0",
    }
    wire.pbx.advance(5)
    assert wire.cmd("conf", "conf_status", conf="7001")["members"][0]["answeredtime"] == "5"
    assert ok(wire.cmd("conf", "conf_mute", conf="7001", channel="FXS/3"))["message"] == (
        "User muted"
    )
    assert wire.cmd("conf", "conf_status", conf="7001")["members"][0]["muted"] == "Yes"
    assert ok(wire.cmd("conf", "conf_unmute", conf="7001", channel="FXS/3"))["message"] == (
        "User unmuted"
    )
    assert wire.cmd("conf", "conf_status", conf="7001")["members"][0]["muted"] == "No"
    wire.take()
    messages = wire.send(
        "conf", {"cmd": "conf_kick", "request_id": "k", "conf": "7001", "channel": "FXS/3"}
    )
    assert messages[0][1]["message"] == "User kicked"
    assert any(k == "cdr" for k, _ in messages)
    assert wire.cmd("conf", "conf_status", conf="7001")["members"] == []
    assert wire.pbx.extension_status("2003") is ExtStatus.IDLE


def test_conference_moderator_is_admin(wire: Wire) -> None:
    moderator = wire.pbx.conferences["7001"].moderators[0]
    ok(wire.cmd("conf", "conf_invite", conf="7001", member=moderator, dialpermission="8001"))
    wire.pbx.advance(2)
    (member,) = wire.cmd("conf", "conf_status", conf="7001")["members"]
    assert member["admin"] == "Yes"
    assert member["markeduser"] == "Yes"
    assert member["channel"].startswith(f"PJSIP/{moderator}-")


def test_conference_invite_external_member(wire: Wire) -> None:
    failed(
        wire.cmd("conf", "conf_invite", conf="7001", member="+4930123456"),
        "dialpermission is required",
    )
    ok(wire.cmd("conf", "conf_invite", conf="7001", member="+4930123456", dialpermission="8001"))
    wire.pbx.advance(2)
    (member,) = wire.cmd("conf", "conf_status", conf="7001")["members"]
    assert member["callerid"] == "+4930123456"


@pytest.mark.parametrize(
    ("cmd", "fields", "message"),
    [
        ("conf_status", {"conf": "1"}, "conference is not existing"),
        ("conf_invite", {"conf": "1", "member": "2001"}, "conference is not existing"),
        ("conf_invite", {"conf": "7001", "member": "1234"}, "member is not existing"),
        ("conf_kick", {"conf": "1", "channel": "FXS/1"}, "No Conference by that name found."),
        (
            "conf_kick",
            {"conf": "7001", "channel": "FXS/1"},
            "No Channel by that name found in Conference.",
        ),
        (
            "conf_mute",
            {"conf": "7001", "channel": "PJSIP/8001-00000002"},
            "No Channel by that name found in Conference.",
        ),
        ("conf_unmute", {"conf": "7001"}, "channel is required"),
    ],
)
def test_conference_failures(wire: Wire, cmd: str, fields: dict[str, Any], message: str) -> None:
    failed(wire.cmd("conf", cmd, **fields), message)


def test_conference_invite_busy_member_fails(wire: Wire) -> None:
    ok(wire.cmd("call", "dial", caller="2001", callee="2002"))
    failed(wire.cmd("conf", "conf_invite", conf="7001", member="2002"), "member is busy")


# ---------------------------------------------------------------------- cfg


def test_extension_set(wire: Wire) -> None:
    reply = wire.cmd(
        "cfg",
        "extension_set",
        extension="8001",
        params={"logout_status": "0", "fullname": "Tom", "permission": "3"},
    )
    assert reply == {"status": "Success", "message": "success", "request_id": reply["request_id"]}
    ext = wire.cmd("system", "extension_list")["extlist"][0]
    assert ext["username"] == "Tom"
    assert wire.pbx.extensions["8001"].permission == 3


def test_extension_set_logout_makes_unavailable(wire: Wire) -> None:
    wire.cmd("call", "dial", caller="2001", callee="2002")
    wire.take()
    messages = wire.send(
        "cfg",
        {
            "cmd": "extension_set",
            "request_id": "l",
            "extension": "2001",
            "params": {"logout_status": "1"},
        },
    )
    statuses = [(m["extension"], m["status"]) for m in wire.events(messages, "extension_status")]
    assert ("2001", "Unavailable") in statuses
    assert not wire.pbx.calls  # logging out ends the call
    ok(wire.cmd("cfg", "extension_set", extension="2001", params={"logout_status": "0"}))
    assert wire.pbx.extension_status("2001") is ExtStatus.IDLE


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"extension": "1234", "params": {"fullname": "x"}}, "extension is not existing"),
        ({"extension": "8001", "params": {"permission": "5"}}, "permission is invalid"),
        ({"extension": "8001", "params": {"logout_status": "2"}}, "logout_status is invalid"),
        ({"extension": "8001", "params": {}}, "params is required"),
        ({"extension": "8001", "params": []}, "params is required"),
        ({"extension": "8001"}, "params is required"),
        ({"params": {"fullname": "x"}}, "extension is required"),
    ],
)
def test_extension_set_failures(wire: Wire, fields: dict[str, Any], message: str) -> None:
    failed(wire.cmd("cfg", "extension_set", **fields), message)


ALARM = {"start": "16:30", "clock_sound": "wakeup.wav", "cycle": "10", "times": "1", "days": "10"}


def test_alarm_set(wire: Wire) -> None:
    ok(wire.cmd("cfg", "alarm_set", extension="8001", params=ALARM))
    alarm = wire.pbx.extensions["8001"].alarm
    assert alarm is not None
    assert alarm.start == "16:30"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clock_sound": "xxxx.wav"}, "clock sound is not existing"),
        ({"start": "25:00"}, "start is invalid"),
        ({"cycle": "ten"}, "cycle is invalid"),
        ({"days": ""}, "days is required"),
    ],
)
def test_alarm_set_failures(wire: Wire, change: dict[str, str], message: str) -> None:
    failed(wire.cmd("cfg", "alarm_set", extension="8001", params=ALARM | change), message)


def test_alarm_set_document_example(wire: Wire) -> None:
    messages = wire.send(
        "cfg",
        {
            "cmd": "alarm_set",
            "request_id": "xxxx",
            "extension": "8001",
            "params": ALARM | {"clock_sound": "xxxx.wav"},
        },
    )
    assert messages == [
        (
            "response",
            {"status": "Failed", "message": "clock sound is not existing", "request_id": "xxxx"},
        )
    ]


# ---------------------------------------------------------------------- request handling


def test_request_id_echoed_as_given_and_omitted_when_absent(wire: Wire) -> None:
    ((_, reply),) = wire.send("system", {"cmd": "deviceInfo", "request_id": 42})
    assert reply["request_id"] == 42
    ((_, reply),) = wire.send("system", {"cmd": "deviceInfo"})
    assert "request_id" not in reply
    ok(reply)
    ((_, reply),) = wire.send("call", {"cmd": "hangup", "callid": "1.1"})
    assert "request_id" not in reply
    failed(reply)


@pytest.mark.parametrize("profile", list(FirmwareProfile))
@pytest.mark.parametrize(("cmd", "sub"), sorted(COMMAND_TOPICS.items()))
def test_every_command_on_a_wrong_sub_topic_fails(
    profile: FirmwareProfile, cmd: str, sub: str
) -> None:
    wire = Wire.make(profile=profile)
    wrong = "conf" if sub != "conf" else "call"
    reply = wire.cmd(wrong, cmd)
    if cmd in FIELD_COMMANDS and profile is FirmwareProfile.DOCUMENT:
        failed(reply, f"unknown cmd {cmd}")
    else:
        failed(reply, f"cmd {cmd} is not supported on command/{wrong}")


@pytest.mark.parametrize("profile", list(FirmwareProfile))
@pytest.mark.parametrize(("cmd", "sub"), sorted(COMMAND_TOPICS.items()))
def test_every_command_without_parameters_gets_one_reply(
    profile: FirmwareProfile, cmd: str, sub: str
) -> None:
    wire = Wire.make(profile=profile)
    reply = wire.cmd(sub, cmd)
    assert reply["status"] in ("Success", "Failed")
    assert "message" in reply or cmd in ("queue_status", "conf_status")


@pytest.mark.parametrize(
    ("payload", "reply"),
    [
        (b'{"cmd": "hangup", "request_id": "xxx", "callid": "1672030725.7987",}', "invalid json"),
        (b'{"cmd": "listen", "request_id": "xxxx", "type": "listen }', "invalid json"),
        (b'{"request_id": "r"}', "cmd is required"),
        (b'{"cmd": 5, "request_id": "r"}', "cmd is required"),
        (b'{"cmd": "reboot", "request_id": "r"}', "unknown cmd reboot"),
        (b"\xff\xfe garbage", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'"deviceInfo"', None),
        (b"null", None),
        (b'{"cmd": "reboot"}', None),
        (b"{}", None),
    ],
)
def test_malformed_commands(wire: Wire, payload: bytes, reply: str | None) -> None:
    messages = wire.send("call", payload)
    if reply is None:
        assert messages == []
    else:
        ((kind, message),) = messages
        assert kind == "response"
        failed(message, reply)
        assert "request_id" in message


def test_unknown_sub_topic(wire: Wire) -> None:
    ((_, reply),) = wire.send("bogus", {"cmd": "deviceInfo", "request_id": "u"})
    failed(reply, "unknown topic command/bogus")
    assert wire.send("bogus", {"cmd": "deviceInfo"}) == []


def test_full_topic_accepted_and_other_tokens_ignored(wire: Wire) -> None:
    payload = b'{"cmd": "deviceInfo", "request_id": "f"}'
    wire.pbx.handle_command(f"{BASE}/command/system", payload)
    assert len(wire.take()) == 1
    wire.pbx.handle_command("device/other/api/v1.0/command/system", payload)
    assert wire.take() == []
    assert wire.pbx.commands_ignored == 1


def test_str_payload_accepted(wire: Wire) -> None:
    wire.pbx.handle_command("system", '{"cmd": "deviceInfo", "request_id": "s"}')
    assert len(wire.take()) == 1


# Seeded fuzzing (not hypothesis: it would write a .hypothesis cache into the repository).
_FIELDS = (
    "caller",
    "callee",
    "extension",
    "monitor",
    "member",
    "queue",
    "conf",
    "channel",
    "callid",
    "channelid",
    "type",
    "paused",
    "params",
    "dialpermission",
    "autoanswer",
)
_VALUES: tuple[Any, ...] = (
    "8001",
    "8002",
    "2001",
    "2002",
    "9000",
    "6666",
    "7001",
    "+4930123456",
    "1234",
    "FXS/1",
    "yes",
    "listen",
    "",
    None,
    0,
    8001,
    1.5,
    True,
    [],
    ["8001"],
    {},
    {"permission": "9"},
    {"fullname": 3},
    ALARM,
    ALARM | {"clock_sound": "alarm.wav"},
    {"logout_status": "1", "permission": "0"},
)


def _random_command(rng: random.Random) -> tuple[str, dict[str, Any]]:
    cmd = rng.choice(sorted(COMMAND_TOPICS))
    fields = {name: rng.choice(_VALUES) for name in rng.sample(_FIELDS, rng.randint(0, 6))}
    return cmd, {"cmd": cmd, "request_id": "p", **fields}


@pytest.mark.parametrize("seed", range(5))
def test_random_commands_get_one_reply_and_keep_state_consistent(seed: int) -> None:
    rng = random.Random(seed)
    wire = Wire.make(seed=seed)
    for _ in range(400):
        cmd, request = _random_command(rng)
        messages = wire.send(COMMAND_TOPICS[cmd], request)
        replies = [m for k, m in messages if k == "response"]
        assert len(replies) == 1, request
        assert replies[0]["status"] in ("Success", "Failed")
        assert replies[0].get("message") != "internal error", request
        wire.pbx.advance(rng.choice((0, 0, 0.5, 2, 31)))
        assert_consistent(wire.pbx)


@pytest.mark.parametrize("seed", range(3))
def test_random_bytes_never_raise(seed: int) -> None:
    rng = random.Random(seed)
    wire = Wire.make()
    valid = b'{"cmd": "dial", "request_id": "r", "caller": "8001", "callee": "2001"}'
    for _ in range(500):
        if rng.random() < 0.5:
            payload = bytearray(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        else:  # a valid command with a few bytes flipped
            payload = bytearray(valid)
            for _ in range(rng.randint(1, 3)):
                payload[rng.randrange(len(payload))] = rng.randrange(256)
        wire.out.clear()
        wire.pbx.handle_command(rng.choice(["system", "call", "x", ""]), bytes(payload))
        assert len(wire.out) <= 4


# ---------------------------------------------------------------------- quirks


def test_quirk_lowercase_status() -> None:
    wire = Wire.make(quirks=Quirks(lowercase_status=True))
    assert wire.cmd("system", "deviceInfo")["status"] == "success"
    assert wire.cmd("call", "hangup", callid="1.1")["status"] == "failed"


def test_quirk_numbers_as_ints() -> None:
    wire = Wire.make(quirks=Quirks(numbers_as_ints=True))
    fxs = wire.cmd("system", "extension_list")["extlist"][-1]
    assert fxs["port"] == 4
    status = wire.cmd("queue", "queue_status", queue="6666")
    assert status["params"]["calls"] == 0
    assert isinstance(status["members"][0]["status"], int)
    assert status["members"][0]["pused"] == 0
    fxo = wire.cmd("system", "trunk_list")["trunklist"][-1]
    assert isinstance(fxo["port"], int)
    wire.pbx.emit_cdr(billsec=7)
    assert wire.take()[-1][1]["billsec"] == 7


def test_quirk_omit_request_id() -> None:
    wire = Wire.make(quirks=Quirks(omit_request_id=True))
    ((_, reply),) = wire.send("system", {"cmd": "deviceInfo", "request_id": "o"})
    assert "request_id" not in reply


def test_quirk_called_for_callid() -> None:
    wire = Wire.make(quirks=Quirks(called_for_callid=True))
    messages = wire.send("call", {"cmd": "dial", "caller": "8001", "callee": "2001"})
    (invite,) = wire.events(messages, "invite")
    assert "callid" not in invite
    assert re.fullmatch(r"\d+\.\d+", invite["called"])
    wire.pbx.ivr_keypress("9000", "2005", "5")
    (dtmf,) = wire.events(wire.take(), "ivrdtmf")
    assert "called" in dtmf
    assert "callid" not in dtmf


def test_quirk_nested_queue_members() -> None:
    wire = Wire.make(quirks=Quirks(nested_queue_members=True))
    reply = wire.cmd("queue", "queue_status", queue="6666")
    assert "members" not in reply
    assert len(reply["params"]["members"]) == 3


def test_quirk_vbat_as_string() -> None:
    wire = Wire.make(quirks=Quirks(vbat_as_string=True))
    fxo = [t for t in wire.cmd("system", "trunk_list")["trunklist"] if t["type"] == "FXO"]
    assert all(isinstance(t["vbat"], str) for t in fxo)


# ---------------------------------------------------------------------- determinism


def _script(seed: int) -> list[tuple[str, bytes]]:
    wire = Wire.make(seed=seed)
    wire.cmd("system", "extension_list")
    wire.cmd("system", "trunk_list")
    wire.cmd("conf", "conf_list")
    wire.cmd("call", "dial", caller="8001", callee="2001")
    wire.pbx.incoming_call("5551234", "6666")
    wire.pbx.advance(15)
    for callid in list(wire.pbx.calls):
        wire.pbx.hangup_call(callid)
    return [(p.topic, p.payload) for p in wire.pbx.history]


def test_same_seed_same_wire_traffic() -> None:
    assert _script(7) == _script(7)
    assert _script(7) != _script(8)


def test_traffic_is_reproducible_and_consistent() -> None:
    def run(seed: int) -> SimulatedPbx:
        pbx = SimulatedPbx(PbxConfig(token=TOKEN, seed=seed, history_size=100_000))
        traffic = TrafficGenerator(pbx, calls_per_minute=30)
        traffic.start()
        for _ in range(3600):
            pbx.advance(0.5)
            assert_consistent(pbx)
        traffic.stop()
        assert sum(traffic.started.values()) > 100
        assert set(traffic.started) >= {"internal", "inbound", "ivr", "outbound"}
        return pbx

    first, second = run(3), run(3)
    assert list(first.history) == list(second.history)
    kinds = {p.kind for p in first.history}
    assert kinds == {"event", "cdr"}
    events = {p.json()["event"] for p in first.history}
    assert events >= {"extension_status", "invite", "ivrdtmf", "cdr"}
    dispositions = {p.json()["disposition"] for p in first.iter_history("cdr")}
    assert dispositions >= {"ANSWERED", "NO ANSWER"}


def test_traffic_survives_reboot() -> None:
    pbx = SimulatedPbx(PbxConfig(token=TOKEN))
    traffic = TrafficGenerator(pbx, calls_per_minute=60)
    traffic.start()
    pbx.advance(120)
    pbx.reboot()
    before = sum(traffic.started.values())
    pbx.advance(120)
    assert sum(traffic.started.values()) > before
    assert_consistent(pbx)


def assert_consistent(pbx: SimulatedPbx) -> None:
    """Invariants: the last status published per extension matches its state, and calls
    reference existing parties."""
    for number, ext in pbx.extensions.items():
        assert ext.reported == pbx.extension_status(number), number
    for call in pbx.calls.values():
        for party in (call.caller_ext, call.callee_ext):
            assert party is None or party in pbx.extensions
    for queue in pbx.queues.values():
        assert all(callid in pbx.calls for callid in queue.waiting)
    for conf in pbx.conferences.values():
        assert all(m.callid in pbx.calls for m in conf.members)
    fxo_busy = {c.trunk for c in pbx.calls.values() if c.trunk}
    for trunk in pbx.trunks.values():
        if trunk.kind == "FXO":
            assert trunk.in_call == (trunk.name in fxo_busy)


# ---------------------------------------------------------------------- config and helpers


@pytest.mark.parametrize(
    "kwargs",
    [
        {"token": ""},
        {"token": "a/b"},
        {"token": "a+b"},
        {"sip_extensions": -1},
        {"answer_delay": -1.0},
        {"unregistered_ratio": 1.5},
    ],
)
def test_config_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PbxConfig(**kwargs)


def test_number_plan_collisions_rejected() -> None:
    with pytest.raises(ValueError, match="used twice"):
        SimulatedPbx(PbxConfig(ivr_numbers=("8001",)))


def test_hms_allows_more_than_24_hours() -> None:
    assert hms(176590) == "49:03:10"
    assert hms(0) == "00:00:00"
    assert hms(-5) == "00:00:00"


def test_advance_rejects_negative_time(wire: Wire) -> None:
    with pytest.raises(ValueError, match="backwards"):
        wire.pbx.advance(-1)


def test_scripting_errors_raise_pbx_error(wire: Wire) -> None:
    with pytest.raises(PbxError, match="Channel not found"):
        wire.pbx.hangup_call("nope")
    with pytest.raises(PbxError, match="extension is not existing"):
        wire.pbx.set_extension_status("1234", "Idle")
    callid = wire.pbx.place_call("8001", "2001")
    wire.pbx.answer_call(callid)
    wire.pbx.hangup_call(callid, Disposition.FAILED)
    assert wire.take()[-1][1]["disposition"] == "FAILED"


def test_trunk_unplugged_ends_its_calls(wire: Wire) -> None:
    callid = wire.pbx.incoming_call("5551234", "2001", trunk="FXO-1")
    wire.pbx.set_trunk_connected("FXO-1", False)
    assert callid not in wire.pbx.calls
    fxo1 = next(t for t in wire.cmd("system", "trunk_list")["trunklist"] if t["name"] == "FXO-1")
    assert fxo1["status"] == "Disconnected"
    assert fxo1["vbat"] in (0, 1)


# ======================================================================================
# Firmware profiles (issue 13): the document's firmware and the field's
# ======================================================================================


@pytest.fixture
def field_wire() -> Wire:
    return Wire.make(profile=FirmwareProfile.FIELD, answer_delay=2)


def test_profile_defaults_to_document_and_accepts_its_name() -> None:
    assert PbxConfig().profile is FirmwareProfile.DOCUMENT
    assert PbxConfig(profile="field").profile is FirmwareProfile.FIELD  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PbxConfig(profile="vendor")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cmd", "fields"),
    [
        ("extcallinfo", {"extension": "8001"}),
        ("atxfer", {"channelid": "PJSIP/8001-00000001", "tonumber": "8003"}),
        ("atxferoperate", {"channelid": "PJSIP/8001-00000001", "operate": "complete"}),
    ],
)
def test_document_profile_does_not_know_the_field_commands(
    wire: Wire, cmd: str, fields: dict[str, str]
) -> None:
    failed(wire.cmd("call", cmd, **fields), f"unknown cmd {cmd}")


def test_document_profile_needs_a_queue_to_pause(wire: Wire) -> None:
    failed(wire.cmd("queue", "queue_paused", queue="", extension="8001", paused="yes"))


def test_document_profile_wire_habits(wire: Wire) -> None:
    assert wire.cmd("system", "livecall")["livecall"] == []
    members = wire.cmd("queue", "queue_status", queue="6666")["members"]
    assert all("pused" in m and "paused" not in m for m in members)
    messages = wire.send(
        "call", {"cmd": "dial", "request_id": "1", "caller": "8001", "callee": "2001"}
    )
    assert wire.events(messages, "callstatus") == []
    assert wire.cmd("system", "livecall")["livecall"][0]["direction"] == "Internal"
    wire.pbx.emit_device_status(online=True)
    assert wire.take() == []


def test_field_profile_wire_habits(field_wire: Wire) -> None:
    assert field_wire.cmd("system", "livecall")["livecall"] == {}
    members = field_wire.cmd("queue", "queue_status", queue="6666")["members"]
    assert members
    assert all("paused" in m and "pused" not in m for m in members)
    empty = Wire.make(
        profile=FirmwareProfile.FIELD, queues=0, conferences=0, fxo_trunks=0, sip_trunks=0
    )
    assert empty.cmd("queue", "queue_list")["queuelist"] == {}
    assert empty.cmd("conf", "conf_list")["conflist"] == {}
    assert empty.cmd("system", "trunk_list")["trunklist"] == {}
    conf = field_wire.cmd("conf", "conf_status", conf="7001")
    assert conf["members"] == {}


def test_field_profile_status_topic(field_wire: Wire) -> None:
    field_wire.pbx.emit_device_status(online=True)
    field_wire.pbx.emit_device_status(online=False)
    assert field_wire.take() == [
        ("status", {"status": "online"}),
        ("status", {"status": "offline"}),
    ]


def test_field_profile_callstatus_and_hangup_events(field_wire: Wire) -> None:
    messages = field_wire.send(
        "call", {"cmd": "dial", "request_id": "1", "caller": "8001", "callee": "2001"}
    )
    callid = messages[0][1]["callid"]
    (ringing,) = field_wire.events(messages, "callstatus")
    assert ringing["calllist"] == [
        {
            "caller": "8001",
            "called": "2001",
            "state": "Ringing",
            "callid": callid,
            "calltype": "Outbound",
        }
    ]
    field_wire.pbx.advance(2)
    (answered,) = field_wire.events(field_wire.take(), "callstatus")
    assert answered["calllist"][0]["state"] == "Up"
    assert field_wire.cmd("system", "livecall")["livecall"][0]["direction"] == "Outbound"

    messages = field_wire.send("call", {"cmd": "hangup", "request_id": "2", "callid": callid})
    (hangup,) = field_wire.events(messages, "hangup")
    assert hangup["callid"] == callid
    assert hangup["channel"].startswith("PJSIP/8001-")
    (ended,) = field_wire.events(messages, "callstatus")
    assert ended["calllist"] == {}
    (cdr,) = [m for k, m in messages if k == "cdr"]
    assert cdr["direction"] == "Outbound"


def test_field_profile_extcallinfo(field_wire: Wire) -> None:
    failed(field_wire.cmd("call", "extcallinfo", extension="8001"), "extension is not in a call")
    failed(field_wire.cmd("call", "extcallinfo", extension="4321"), "extension is not existing")
    callid = ok(field_wire.cmd("call", "dial", caller="8001", callee="2001"))["callid"]
    call = field_wire.pbx.calls[callid]
    for extension, own, peer in (
        ("8001", call.source, call.destination),
        ("2001", call.destination, call.source),
    ):
        reply = ok(field_wire.cmd("call", "extcallinfo", extension=extension))
        assert reply["callid"] == callid
        assert (reply["channelid"], reply["peerchannelid"]) == (own, peer)
        assert (reply["from"], reply["to"], reply["direction"]) == ("8001", "2001", "Outbound")


def _answered_call(wire: Wire, caller: str, callee: str) -> str:
    callid: str = ok(wire.cmd("call", "dial", caller=caller, callee=callee))["callid"]
    wire.pbx.advance(2)
    return callid


def test_field_profile_attended_transfer_completed(field_wire: Wire) -> None:
    pbx = field_wire.pbx
    callid = _answered_call(field_wire, "2001", "8001")
    channel = pbx.calls[callid].destination  # 8001's side: 8001 transfers 2001 to 8003
    ok(field_wire.cmd("call", "atxfer", channelid=channel, tonumber="8003"))
    assert pbx.extension_status("8003") is ExtStatus.RINGING
    failed(
        field_wire.cmd("call", "atxfer", channelid=channel, tonumber="8004"),
        "transfer already in progress",
    )
    pbx.advance(2)
    assert len(pbx.calls) == 2  # the call on hold and the consultation
    ok(field_wire.cmd("call", "atxferoperate", channelid=channel, operate="complete"))
    (call,) = pbx.calls.values()
    assert call.callid == callid
    assert (call.caller_ext, call.callee_ext) == ("2001", "8003")
    assert pbx.extension_status("8001") is ExtStatus.IDLE
    assert pbx.extension_status("8003") is ExtStatus.IN_USE
    failed(
        field_wire.cmd("call", "atxferoperate", channelid=channel, operate="complete"),
        "No transfer in progress",
    )


def test_field_profile_attended_transfer_cancelled(field_wire: Wire) -> None:
    pbx = field_wire.pbx
    callid = _answered_call(field_wire, "8001", "2001")
    channel = pbx.calls[callid].source
    ok(field_wire.cmd("call", "atxfer", channelid=channel, tonumber="8003"))
    failed(
        field_wire.cmd("call", "atxferoperate", channelid=channel, operate="park"),
        "operate is invalid",
    )
    ok(field_wire.cmd("call", "atxferoperate", channelid=channel, operate="cancel"))
    assert list(pbx.calls) == [callid]
    assert pbx.extension_status("8003") is ExtStatus.IDLE
    assert pbx.extension_status("8001") is ExtStatus.IN_USE


def test_field_profile_attended_transfer_refusals(field_wire: Wire) -> None:
    pbx = field_wire.pbx
    failed(
        field_wire.cmd("call", "atxfer", channelid="PJSIP/8001-000000ff", tonumber="8003"),
        "Channel not found",
    )
    callid = _answered_call(field_wire, "8001", "2001")
    channel = pbx.calls[callid].source
    failed(
        field_wire.cmd("call", "atxfer", channelid=channel, tonumber="4321"),
        "tonumber is not existing",
    )
    failed(
        field_wire.cmd("call", "atxfer", channelid=channel, tonumber="2001"),
        "tonumber is already in the call",
    )
    # Hanging up the held call forgets the transfer.
    ok(field_wire.cmd("call", "atxfer", channelid=channel, tonumber="8003"))
    ok(field_wire.cmd("call", "hangup", callid=callid))
    failed(
        field_wire.cmd("call", "atxferoperate", channelid=channel, operate="complete"),
        "No transfer in progress",
    )


def test_field_profile_pauses_an_agent_in_every_queue(field_wire: Wire) -> None:
    pbx = field_wire.pbx
    agent = next(
        number
        for number in pbx.extensions
        if sum(q.member(number) is not None for q in pbx.queues.values()) >= 1
    )
    queues = [q for q in pbx.queues.values() if q.member(agent) is not None]
    ok(field_wire.cmd("queue", "queue_paused", queue="", extension=agent, paused="yes"))
    assert all(q.member(agent).paused for q in queues)  # type: ignore[union-attr]
    ok(field_wire.cmd("queue", "queue_paused", queue="", extension=agent, paused="no"))
    assert not any(q.member(agent).paused for q in queues)  # type: ignore[union-attr]
    outsider = next(
        n for n in pbx.extensions if all(q.member(n) is None for q in pbx.queues.values())
    )
    failed(
        field_wire.cmd("queue", "queue_paused", queue="", extension=outsider, paused="yes"),
        "Interface not found",
    )


@pytest.mark.parametrize("profile", ["document", "field"])
def test_cli_profile_flag(profile: str) -> None:
    from smartpbx_sim.__main__ import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(["--profile", profile]))
    assert config.profile is FirmwareProfile(profile)
    assert build_parser().parse_args([]).profile == "document"
