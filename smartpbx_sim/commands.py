"""The command layer: parse a request, run it on the PBX, reply in the vendor's format.

Field names, value spellings and success messages follow the vendor document's examples
(``pused``, ``"Remove interface to queue"``...); failure messages mimic the firmware's
Asterisk-derived wording. See ``PbxConfig.quirks`` for the documented variations.
"""

from __future__ import annotations

from collections.abc import Callable
import json
import logging
import re
from typing import TYPE_CHECKING, Any

from . import wire
from .errors import PbxError
from .model import QUEUE_DEVICE_STATE, Alarm
from .names import CLOCK_SOUNDS

if TYPE_CHECKING:
    from .pbx import SimulatedPbx

_LOGGER = logging.getLogger(__name__)

# Recovers the request id from a payload that is not valid JSON (the document's own
# examples have trailing commas and missing quotes), so the sender still gets a reply.
_REQUEST_ID = re.compile(rb'"request_id"\s*:\s*"((?:[^"\\]|\\.)*)"')
_CLOCK = re.compile(r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$")


class Request:
    """A decoded command with typed accessors that fail the way the PBX does."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def text(self, name: str) -> str:
        """A required, non-empty string parameter."""
        value = self.data.get(name)
        if value is None or value == "":
            raise _error(f"{name} is required")
        if not isinstance(value, str):
            raise _error(f"{name} is invalid")
        return value

    def optional(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise _error(f"{name} is invalid")
        return value

    def params(self) -> dict[str, Any]:
        value = self.data.get("params")
        if not isinstance(value, dict):
            raise _error("params is required")
        return value


def _error(message: str) -> PbxError:
    return PbxError(message)


Handler = Callable[["SimulatedPbx", Request], dict[str, object]]


def dispatch(pbx: SimulatedPbx, sub: str, raw: bytes) -> None:
    """Handle one command payload received on ``command/<sub>``; never raises."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        match = _REQUEST_ID.search(raw)
        if match is not None:
            rid = match.group(1).decode("utf-8", "replace")
            _reply(pbx, ok=False, fields={"message": "invalid json"}, rid=rid, has_rid=True)
        else:
            _LOGGER.debug("Ignoring a command that is not JSON on command/%s", sub)
        return
    if not isinstance(data, dict):
        _LOGGER.debug("Ignoring a command that is not a JSON object on command/%s", sub)
        return
    has_rid = "request_id" in data
    rid = data.get("request_id")

    def fail(message: str) -> None:
        _reply(pbx, ok=False, fields={"message": message}, rid=rid, has_rid=has_rid)

    cmd = data.get("cmd")
    if sub not in wire.SUB_TOPICS:
        if has_rid:
            fail(f"unknown topic command/{sub}")
        return
    if not isinstance(cmd, str) or not cmd:
        if has_rid:
            fail("cmd is required")
        return
    expected = wire.COMMAND_TOPICS.get(cmd)
    if cmd in wire.FIELD_COMMANDS and not pbx.config.field_firmware:
        expected = None  # the document's firmware does not know them
    if expected is None:
        if has_rid:
            fail(f"unknown cmd {cmd}")
        return
    if expected != sub:
        fail(f"cmd {cmd} is not supported on command/{sub}")
        return
    _LOGGER.debug("command/%s %s", sub, cmd)
    try:
        fields = HANDLERS[cmd](pbx, Request(data))
    except PbxError as err:
        fail(err.message)
    except Exception:
        # A simulator bug must not take the broker link down with it; log it loudly.
        _LOGGER.exception("Simulator failed on %s", cmd)
        fail("internal error")
    else:
        _reply(pbx, ok=True, fields=fields, rid=rid, has_rid=has_rid)


def _reply(
    pbx: SimulatedPbx, *, ok: bool, fields: dict[str, object], rid: object, has_rid: bool
) -> None:
    quirks = pbx.config.quirks
    status = "Success" if ok else "Failed"
    payload: dict[str, object] = {"status": status.lower() if quirks.lowercase_status else status}
    payload.update(fields)
    if has_rid and not quirks.omit_request_id:
        payload["request_id"] = rid
    pbx.send_response(payload)


# ---------------------------------------------------------------------- system


def _device_info(pbx: SimulatedPbx, _req: Request) -> dict[str, object]:
    config = pbx.config
    return {
        "deviceinfo": {
            "devicename": config.devicename,
            "sn": config.serial,
            "firmwarever": config.firmware,
            "systemtime": wire.systemtime(pbx.now, config.timezone),
            "uptime": wire.hms(pbx.uptime),
        },
        "message": "success",
    }


def _extension_list(pbx: SimulatedPbx, _req: Request) -> dict[str, object]:
    extlist: list[dict[str, object]] = []
    for ext in pbx.extensions.values():
        status = str(pbx.extension_status(ext.number))
        if ext.kind == "FXS":
            extlist.append(
                {
                    "number": ext.number,
                    "status": status,
                    "type": "FXS",
                    "port": pbx.number(ext.port or 0),
                    "username": ext.username,
                }
            )
        else:
            extlist.append(
                {"status": status, "type": "SIP", "number": ext.number, "username": ext.username}
            )
    return {"message": "success", "extlist": pbx.wire_list(extlist)}


def _trunk_list(pbx: SimulatedPbx, _req: Request) -> dict[str, object]:
    trunklist: list[dict[str, object]] = []
    for trunk in pbx.trunks.values():
        if trunk.kind == "FXO":
            vbat: object = str(trunk.vbat) if pbx.config.quirks.vbat_as_string else trunk.vbat
            trunklist.append(
                {
                    "port": pbx.number(trunk.port or 0),
                    "vbat": vbat,
                    "status": trunk.status,
                    "name": trunk.name,
                    "type": "FXO",
                }
            )
        else:
            trunklist.append({"status": trunk.status, "name": trunk.name, "type": "SIP"})
    return {"trunklist": pbx.wire_list(trunklist), "message": "success"}


def _livecall(pbx: SimulatedPbx, _req: Request) -> dict[str, object]:
    return {
        "livecall": pbx.wire_list(
            [
                {
                    "caller": call.caller,
                    "source": call.source,
                    "called": call.called,
                    "destination": call.destination,
                    "duration": wire.hms(pbx.now - call.start),
                    "callid": call.callid,
                    "state": call.state,
                    "direction": pbx.direction_text(call.direction),
                    "recording": call.recording,
                }
                for call in pbx.calls.values()
            ]
        ),
        "message": "success",
    }


# ---------------------------------------------------------------------- cfg


def _extension_set(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    number = req.text("extension")
    params = req.params()
    # The document marks logout_status and permission required, but a client cannot read
    # them back (extension_list lacks them), so any subset is accepted and validated.
    known = {"logout_status", "fullname", "permission"}
    if not known & params.keys():
        raise _error("params is required")
    logout = params.get("logout_status")
    if logout is not None and logout not in ("0", "1"):
        raise _error("logout_status is invalid")
    permission = params.get("permission")
    if permission is not None and permission not in ("0", "1", "2", "3", "4"):
        raise _error("permission is invalid")
    fullname = params.get("fullname")
    if fullname is not None and not isinstance(fullname, str):
        raise _error("fullname is invalid")
    pbx.set_extension(
        number,
        fullname=fullname,
        permission=int(permission) if permission is not None else None,
        logged_out=(logout == "1") if logout is not None else None,
    )
    return {"message": "success"}


def _alarm_set(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    number = req.text("extension")
    params = req.params()
    values: dict[str, str] = {}
    for name in ("start", "clock_sound", "cycle", "times", "days"):
        value = params.get(name)
        if not isinstance(value, str) or not value:
            raise _error(f"{name} is required")
        values[name] = value
    if number not in pbx.extensions:
        raise _error("extension is not existing")
    if values["clock_sound"] not in CLOCK_SOUNDS:
        raise _error("clock sound is not existing")
    if not _CLOCK.match(values["start"]):
        raise _error("start is invalid")
    for name in ("cycle", "times", "days"):
        if not values[name].isdigit():
            raise _error(f"{name} is invalid")
    pbx.set_alarm(number, Alarm(**values))
    return {"message": "success"}


# ---------------------------------------------------------------------- call


def _dial(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    caller = req.text("caller")
    callee = req.text("callee")
    dialpermission = req.optional("dialpermission")
    autoanswer = req.optional("autoanswer")
    callid = pbx.place_call(
        caller, callee, dialpermission=dialpermission, autoanswer=autoanswer == "yes"
    )
    return {"message": "success", "callid": callid}


def _hangup(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    # Field firmware also accepts the channel name as ``channelid``.
    target = req.optional("callid") or req.optional("channelid")
    if not target:
        raise _error("callid is required")
    pbx.hangup_call(target)
    return {"message": "Channel Hungup"}


def _extcallinfo(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    return {"message": "success", **pbx.extension_call(req.text("extension"))}


def _atxfer(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    pbx.attended_transfer(req.text("channelid"), req.text("tonumber"))
    return {"message": "success"}


def _atxferoperate(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    pbx.transfer_operate(req.text("channelid"), req.text("operate"))
    return {"message": "success"}


def _listen(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    callid = pbx.listen(req.text("monitor"), req.text("extension"), req.text("type"))
    return {"callid": callid, "message": "success"}


# ---------------------------------------------------------------------- queue


def _queue_list(pbx: SimulatedPbx, _req: Request) -> dict[str, object]:
    return {
        "message": "success",
        "queuelist": pbx.wire_list(
            [
                {
                    "number": q.number,
                    "description": q.description,
                    "members": ",".join(m.agent for m in q.members),
                    "strategy": q.strategy,
                }
                for q in pbx.queues.values()
            ]
        ),
    }


def _queue_status(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    number = req.text("queue")
    queue = pbx.queues.get(number)
    if queue is None:
        raise _error("queue is not existing")
    members: list[dict[str, object]] = []
    for member in queue.members:
        if member.agent in pbx.extensions:
            state = QUEUE_DEVICE_STATE[pbx.extension_status(member.agent)]
        else:
            state = 4  # Asterisk AST_DEVICE_INVALID
        # "pused" is how the document's example spells paused; field firmware says "paused".
        paused_key = "paused" if pbx.config.field_firmware else "pused"
        members.append(
            {
                "agent": member.agent,
                "status": pbx.number(state),
                paused_key: pbx.number(1 if member.paused else 0),
            }
        )
    params: dict[str, object] = {
        "max": pbx.number(queue.max),
        "strategy": queue.strategy,
        "calls": pbx.number(len(queue.waiting)),
        "holdtime": pbx.number(queue.holdtime),
        "talktime": pbx.number(queue.talktime),
        "completed": pbx.number(queue.completed),
        "abandoned": pbx.number(queue.abandoned),
    }
    if pbx.config.quirks.nested_queue_members:
        params["members"] = pbx.wire_list(members)
        return {"queue": number, "params": params}
    return {"queue": number, "params": params, "members": pbx.wire_list(members)}


def _queue_add(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    pbx.queue_add(req.text("queue"), req.text("extension"))
    return {"message": "Added interface to queue"}


def _queue_remove(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    pbx.queue_remove(req.text("queue"), req.text("extension"))
    return {"message": "Remove interface to queue"}


def _queue_paused(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    # Field firmware: queue "" pauses the agent in every queue; the document needs one.
    every_queue = pbx.config.field_firmware and req.data.get("queue") == ""
    queue = "" if every_queue else req.text("queue")
    extension = req.text("extension")
    paused = req.text("paused")
    if paused not in ("yes", "no"):
        raise _error("paused is invalid")
    if every_queue:
        pbx.queue_pause_everywhere(extension, paused == "yes")
    else:
        pbx.queue_pause(queue, extension, paused == "yes")
    if paused == "yes":
        return {"message": "Interface paused successfully"}
    return {"message": "Interface unpaused successfully"}


# ---------------------------------------------------------------------- conf


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _conf_list(pbx: SimulatedPbx, _req: Request) -> dict[str, object]:
    return {
        "message": "success",
        "conflist": pbx.wire_list(
            [
                {
                    "description": c.description,
                    "number": c.number,
                    "moderators": ",".join(c.moderators),
                    "participantpassword": c.participantpassword,
                    "allowinvite": _yes_no(c.allowinvite),
                    "moderatorpassword": c.moderatorpassword,
                    "waitformoderator": _yes_no(c.waitformoderator),
                }
                for c in pbx.conferences.values()
            ]
        ),
    }


def _conf_status(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    number = req.text("conf")
    conf = pbx.conferences.get(number)
    if conf is None:
        raise _error("conference is not existing")
    moderator_present = any(m.admin for m in conf.members)

    def flag(value: bool) -> str:
        return "Yes" if value else "No"

    members = [
        {
            "callerid": m.callerid,
            "channel": m.channel,
            "admin": flag(m.admin),
            "markeduser": flag(m.admin),
            "waitmarked": flag(conf.waitformoderator and not m.admin),
            "waiting": flag(conf.waitformoderator and not m.admin and not moderator_present),
            "muted": flag(m.muted),
            "talking": flag(m.talking),
            "answeredtime": pbx.number(int(pbx.now - m.joined)),
        }
        for m in conf.members
    ]
    return {"members": pbx.wire_list(members), "conf": number}


def _conf_invite(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    pbx.conference_invite(req.text("conf"), req.text("member"), req.optional("dialpermission"))
    return {"message": "success"}


def _conf_kick(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    pbx.conference_kick(req.text("conf"), req.text("channel"))
    return {"message": "User kicked"}


def _conf_mute(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    pbx.conference_mute(req.text("conf"), req.text("channel"), muted=True)
    return {"message": "User muted"}


def _conf_unmute(pbx: SimulatedPbx, req: Request) -> dict[str, object]:
    pbx.conference_mute(req.text("conf"), req.text("channel"), muted=False)
    return {"message": "User unmuted"}


HANDLERS: dict[str, Handler] = {
    "deviceInfo": _device_info,
    "extension_list": _extension_list,
    "trunk_list": _trunk_list,
    "livecall": _livecall,
    "extension_set": _extension_set,
    "alarm_set": _alarm_set,
    "dial": _dial,
    "hangup": _hangup,
    "listen": _listen,
    "extcallinfo": _extcallinfo,
    "atxfer": _atxfer,
    "atxferoperate": _atxferoperate,
    "queue_list": _queue_list,
    "queue_status": _queue_status,
    "queue_add": _queue_add,
    "queue_remove": _queue_remove,
    "queue_paused": _queue_paused,
    "conf_list": _conf_list,
    "conf_status": _conf_status,
    "conf_invite": _conf_invite,
    "conf_kick": _conf_kick,
    "conf_mute": _conf_mute,
    "conf_unmute": _conf_unmute,
}
assert HANDLERS.keys() == wire.COMMAND_TOPICS.keys()
