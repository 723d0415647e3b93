"""A scriptable stand-in for the PBX, for protocol-level client tests, plus vendor examples.

``PbxResponder`` connects to a real broker as the PBX does, records every command it
receives and answers each from a handler (by default: the vendor document's example reply
for that command, with our request_id echoed). Tests swap the handler to stay silent,
answer Failed, drop the request_id, hold replies back and release them shuffled, or
publish anything on the PBX's topics. The full simulator (``smartpbx_sim``) covers the
PBX's behaviour; this covers the wire protocol's corner cases precisely.

``VENDOR_*`` hold the document's JSON examples, fixed only where they are not valid JSON
(noted beside each).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import json
import random
import socket
from typing import Any

import aiomqtt

# --- the vendor document's examples ----------------------------------------------------

VENDOR_REQUESTS: dict[str, str] = {
    "deviceInfo": '{"cmd": "deviceInfo", "request_id": "e914b5997b762aa7"}',
    "extension_list": '{"cmd": "extension_list", "request_id": "e914b5997b762aa7"}',
    "extension_set": """{
  "cmd": "extension_set",
  "request_id": "xxx",
  "extension": "8001",
  "params": {
    "logout_status": "0",
    "fullname": "Tom",
    "permission": "3"
  }
}""",
    "alarm_set": """{
  "cmd": "alarm_set",
  "request_id": "xxxx",
  "extension": "8001",
  "params": {
    "start": "16:30",
    "clock_sound": "xxxx.wav",
    "cycle": "10",
    "times": "1",
    "days": "10"
  }
}""",
    "trunk_list": '{"cmd": "trunk_list", "request_id": "e914b5997b762aa7"}',
    "livecall": '{"cmd": "livecall", "request_id": "e914b5997b762aa7"}',
    # Fixed: the document has a trailing comma after the callid.
    "hangup": '{"cmd": "hangup", "request_id": "xxx", "callid": "1672030725.7987"}',
    "dial": '{ "cmd": "dial", "request_id": "xxx", "caller": "8001", "callee": "2005" }',
    "dial_ivr": (
        '{"cmd": "dial", "request_id": "xxx", "caller": "8001", "callee": "9000",'
        ' "dialpermission": "8001"}'
    ),
    # Fixed: the document lacks the comma before "dialpermission".
    "dial_queue": (
        '{ "cmd": "dial", "request_id": "xxx", "caller": "6666",'
        ' "callee": "+861235432341231", "dialpermission": "8001" }'
    ),
    "queue_list": '{"cmd": "queue_list", "request_id": "xxxx"}',
    "queue_status": '{"cmd": "queue_status", "request_id": "xxx", "queue": "6666"}',
    "queue_add": '{"cmd": "queue_add", "request_id": "xxx", "queue": "6666", "extension": "8001"}',
    "queue_remove": (
        '{"cmd": "queue_remove", "request_id": "xxx", "queue": "6666", "extension": "8001"}'
    ),
    "queue_paused": (
        '{ "cmd": "queue_paused", "request_id": "xxx", "queue": "6666", "extension": "8001",'
        ' "paused": "yes" }'
    ),
    # Fixed: the document lacks the closing quote of "listen".
    "listen": (
        '{ "cmd": "listen", "request_id": "xxxx", "monitor": "2008", "extension": "2004",'
        ' "type": "listen" }'
    ),
    "conf_list": '{"cmd": "conf_list", "request_id": "xxxx"}',
    "conf_status": '{ "cmd": "conf_status", "request_id": "e914b5997b762aa7", "conf": "2222" }',
    "conf_invite": (
        '{"cmd": "conf_invite", "request_id": "e914b5997b762aa7", "conf": "2222",'
        ' "dialpermission": "8001", "member": "2003"}'
    ),
    "conf_kick": """{
  "cmd": "conf_kick",
  "request_id": "e914b5997b762aa7",
  "conf": "2222",
  "channel": "PJSIP/8001-00000002"
}""",
    "conf_mute": """{
  "cmd": "conf_mute",
  "request_id": "e914b5997b762aa7",
  "conf": "2222",
  "channel": "PJSIP/8001-00000002"
}""",
    "conf_unmute": """{
  "cmd": "conf_unmute",
  "request_id": "e914b5997b762aa7",
  "conf": "2222",
  "channel": "PJSIP/8001-00000002"
}""",
}

VENDOR_REPLIES: dict[str, str] = {
    "deviceInfo": """{"status": "Success", "deviceinfo":
  { "devicename": "SPX1006O16S",
    "sn": "XR18132110000787",
    "firmwarever": "0.0.1-beta-20220610",
    "systemtime": "Fri Jun 10 11:37:23 2022",
    "uptime": "00:22:27"},
  "message": "success",
  "request_id": "e914b5997b762aa7"}""",
    "extension_list": """{ "status": "Success",
  "message": "success",
  "extlist": [{"status": "Unavailable", "type": "SIP", "number": "8001", "username": "8001"},
              {"number": "2005", "status": "Idle", "type": "FXS", "port": "5", "username": ""},
              {"number": "2006", "status": "Idle", "type": "FXS", "port": "6", "username": ""},
              {"number": "2007", "status": "Idle", "type": "FXS", "port": "7", "username": ""},
              {"number": "2008", "status": "Idle", "type": "FXS", "port": "8", "username": ""},
              {"number": "2009", "status": "Idle", "type": "FXS", "port": "9", "username": ""},
              {"number": "2010", "status": "Idle", "type": "FXS", "port": "10", "username": ""},
              {"number": "2011", "status": "Idle", "type": "FXS", "port": "11", "username": ""},
              {"number": "2012", "status": "Idle", "type": "FXS", "port": "12", "username": ""},
              {"number": "2013", "status": "Idle", "type": "FXS", "port": "13", "username": ""},
              {"number": "2014", "status": "Idle", "type": "FXS", "port": "14", "username": ""},
              {"number": "2015", "status": "Idle", "type": "FXS", "port": "15", "username": ""},
              {"number": "2016", "status": "Idle", "type": "FXS", "port": "16", "username": ""}],
  "request_id": "e914b5997b762aa7"}""",
    "extension_set": '{"message": "success", "status": "Success", "request_id": "xxx"}',
    "alarm_set": (
        '{"request_id": "xxxx", "status": "Failed", "message": "clock sound is not existing"}'
    ),
    # Fixed: the document's example is split across a page break, its first part closed
    # early ("}]}") after FXO-2; joined back into the one list it obviously is.
    "trunk_list": """{"trunklist": [{"status": "Idle", "name": "SIP_kMvORe", "type": "SIP"},
{"port": "1", "vbat": 50, "status": "Idle", "name": "FXO-1", "type": "FXO"},
{"port": "2", "vbat": 1, "status": "Disconnected", "name": "FXO-2", "type": "FXO"},
{"port": "3", "vbat":1, "status": "Disconnected", "name": "FXO-3", "type": "FXO"},
{"port": "4", "vbat":1, "status": "Disconnected", "name": "FXO-4", "type": "FXO"}],
"request_id":" e914b5997b762aa7",
"status": "Success",
"message": "success"}""",
    "livecall": """{ "request_id": "e914b5997b762aa7",
  "status": "Success",
  "livecall":
    [{"caller": "2005", "source": "FXS/5", "called": "2006", "destination": "FXS/6",
      "duration": "00:00:06", "callid": "1673071399.25", "state": "Ringing",
      "direction": "Internal", "recording": "no"}],
  "message": "success"}""",
    "hangup": '{ "request_id": "xxx", "status": "Success", "message": "Channel Hungup" }',
    "dial": (
        '{ "message": "success", "callid": "1673080587.2118", "request_id": "xxx",'
        ' "status": "Success" }'
    ),
    "dial_ivr": (
        '{"callid": "1673081585.0187", "request_id": "xxx", "message": "success",'
        ' "status": "Success"}'
    ),
    "dial_queue": (
        '{ "status": "Success", "callid": "1672026034.6568", "message": "success",'
        ' "request_id": "xxx" }'
    ),
    "queue_list": (
        '{"message": "success", "queuelist":[{"number": "33222", "description": "n/a",'
        ' "members": "2003,2004,2005", "strategy": "ringall"}], "status": "Success",'
        ' "request_id": "xxxx"}'
    ),
    "queue_status": """{ "request_id": "xxx",
  "queue": "6666",
  "params": {
    "max": "0",
    "strategy": "ringall",
    "calls": "0",
    "holdtime": "0",
    "talktime": "",
    "completed": "0",
    "abandoned": "0" },
  "members": [
    { "agent": "2002", "status": "0", "pused": "0" },
    { "agent": "2003", "status": "0", "pused": "0" },
    { "agent": "2004", "status": "0", "pused": "0" },
    { "agent": "2005", "status": "0", "pused": "0" },
    { "agent": "2006", "status": "0", "pused": "0" },
    { "agent": "2007", "status": "0", "pused": "0" },
    { "agent": "2008", "status": "0", "pused": "0" },
    { "agent": "8001", "status": "1", "pused": "1" }
  ],
  "status": "Success" }""",
    "queue_add": (
        '{"request_id": "xxx", "status": "Success", "message": "Added interface to queue" }'
    ),
    "queue_remove": (
        '{"request_id": "xxx", "status": "Success", "message": "Remove interface to queue" }'
    ),
    "queue_paused": (
        '{ "request_id": "xxx", "status": "Success", "message": " Interface paused successfully" }'
    ),
    "listen": (
        '{ "callid": "1669694889.6367", "request_id": "xxxx", "status": "Success",'
        ' "message": "success" }'
    ),
    "conf_list": """{
  "message": "success",
  "conflist": [{"description": "", "number": "33333", "moderators": "2003,2004",
  "participantpassword": "111", "allowinvite": "yes", "moderatorpassword": "11223",
  "waitformoderator": "yes"},
  {"description": "", "number": "4444", "moderators": "2004,2005", "participantpassword": "",
  "allowinvite": "yes", "moderatorpassword": "", "waitformoderator": "no"} ],
  "status": "Success",
  "request_id": "xxxx"
}""",
    # Kept as printed, OCR slip "PJSIPV8001" included (NOTES.md: it means PJSIP/8001).
    "conf_status": """{
  "request_id": "e914b5997b762aa7",
  "members": [ { "callerid": "8001", "channel": "PJSIPV8001-00000002", "admin": "No",
  "markeduser": "No", "waitmarked": "No", "waiting": "No", "muted": "No", "talking": "No",
  "answeredtime": "2" } ],
  "conf": "2222",
  "status": "Success"
}""",
    "conf_invite": (
        '{"status": "Success", "message": "success", "request_id": "e914b5997b762aa7"}'
    ),
    "conf_kick": (
        '{ "request_id": "e914b5997b762aa7", "status": "Success", "message": "User kicked" }'
    ),
    "conf_mute": (
        '{ "request_id": "e914b5997b762aa7", "status": "Success", "message": "User muted" }'
    ),
    "conf_unmute": (
        '{ "request_id": "e914b5997b762aa7", "status": "Success", "message": "User unmuted" }'
    ),
}

VENDOR_EVENTS: list[str] = [
    '{ "event": "extension_status", "extension": "2005", "status": "Idle" }',
    '{ "event": "extension_status", "extension": "2005", "status": "InUse" }',
    '{ "event": "extension_status", "extension": "2005", "status": "Busy" }',
    (
        '{ "event": "extension_status", "extension": "8001",'
        ' "ipaddr": "sip:8001@192.168.8.171:63414", "status": "InUse" }'
    ),
    '{ "event": "invite", "from": "8001", "to": "2005", "callid": "1673077852.143" }',
    (
        '{"event": "ivrdtmf", "ivr": "9000", "caller": "2005", "dtmf": "5",'
        ' "callid": "1673078689.147"}'
    ),
]

# As printed: the values are shifted by one field (NOTES.md), so "start" reads "FXSV5".
VENDOR_CDR = """{
  "event": "cdr",
  "callid": "1672372428.45",
  "src": "2007",
  "srctech": "FXSV7",
  "dst": "FXSV7",
  "dsttech": "2005",
  "start": "FXSV5",
  "end": "2022-12-30 11:53:55",
  "billsec": "0",
  "disposition": "NO ANSWER",
  "direction": "Internal",
  "dtmf": "0",
  "recordfile": ""
}"""


def vendor_reply(command: str) -> dict[str, Any]:
    """The document's example reply to ``command`` (a fresh dict each time)."""
    parsed: dict[str, Any] = json.loads(VENDOR_REPLIES[command])
    return parsed


# --- the responder ---------------------------------------------------------------------

type Command = dict[str, Any]
type Handler = Callable[[str, Command], dict[str, Any] | None]
"""(sub_topic, command) -> reply to publish (None: stay silent)."""


def vendor_handler(sub_topic: str, command: Command) -> dict[str, Any] | None:
    """Answer with the document's example, echoing the request_id; Success for the rest."""
    name = str(command.get("cmd"))
    if name == "alarm_set":  # the document's alarm example is a Failed reply
        reply = {"status": "Success", "message": "success"}
    elif name in VENDOR_REPLIES:
        reply = vendor_reply(name)
    else:
        reply = {"status": "Success", "message": f"{sub_topic}/{name} done"}
    if "request_id" in command:
        reply["request_id"] = command["request_id"]
    return reply


def silent_handler(sub_topic: str, command: Command) -> None:
    """A PBX that never answers."""
    return None


def failing_handler(message: str) -> Handler:
    """A PBX that refuses every command with ``message``."""

    def handler(sub_topic: str, command: Command) -> dict[str, Any]:
        return {"request_id": command.get("request_id"), "status": "Failed", "message": message}

    return handler


class PbxResponder:
    """Plays the PBX on a real broker. ``async with PbxResponder(...)`` or start/stop."""

    def __init__(self, host: str, port: int, token: str, handler: Handler = vendor_handler):
        self.token = token
        self.handler = handler
        self.commands: list[tuple[str, Command]] = []
        """Every command received: (sub_topic, decoded payload), in arrival order."""
        self.hold = False
        """When True replies are kept in ``held`` instead of published."""
        self.held: list[dict[str, Any]] = []
        self._base = f"device/{token}/api/v1.0"
        self._client = aiomqtt.Client(
            host,
            port,
            identifier=f"pbx-{token}",
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )
        self._reader: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        await self._client.__aenter__()
        await self._client.subscribe(f"{self._base}/command/#", qos=1)
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)

    async def __aenter__(self) -> PbxResponder:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _read(self) -> None:
        prefix = f"{self._base}/command/"
        async for message in self._client.messages:
            sub_topic = message.topic.value.removeprefix(prefix)
            command = json.loads(message.payload)
            self.commands.append((sub_topic, command))
            self._arrived.set()
            reply = self.handler(sub_topic, command)
            if reply is None:
                continue
            if self.hold:
                self.held.append(reply)
            else:
                await self.publish("response", reply)

    async def publish(self, kind: str, payload: dict[str, Any] | bytes | str) -> None:
        """Publish on ``device/<token>/api/v1.0/<kind>`` as the PBX would (QoS 1)."""
        if isinstance(payload, dict):
            data: bytes | str = json.dumps(payload)
        else:
            data = payload
        await self._client.publish(f"{self._base}/{kind}", data, qos=1)

    async def wait_commands(self, count: int, limit: float = 5.0) -> None:
        """Wait until ``count`` commands have arrived in total."""
        async with asyncio.timeout(limit):
            while len(self.commands) < count:
                self._arrived.clear()
                await self._arrived.wait()

    async def release(self, *, shuffle: bool = True, seed: int = 0) -> int:
        """Publish the held replies (shuffled by default); returns how many."""
        replies, self.held = self.held, []
        if shuffle:
            random.Random(seed).shuffle(replies)
        for reply in replies:
            await self.publish("response", reply)
        return len(replies)


class CommandSpy:
    """Records everything published on ``device/+/api/v1.0/command/#`` (any token)."""

    FILTER = "device/+/api/v1.0/command/#"

    def __init__(self, host: str, port: int) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._client = aiomqtt.Client(host, port, identifier=f"spy-{random.getrandbits(48):x}")
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CommandSpy:
        await self._client.__aenter__()
        await self._client.subscribe(self.FILTER, qos=1)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)

    async def _read(self) -> None:
        async for message in self._client.messages:
            self.messages.append((message.topic.value, bytes(message.payload)))

    def commands(self) -> list[str]:
        """The ``cmd`` of every message seen, in order."""
        return [str(json.loads(payload).get("cmd")) for _, payload in self.messages]
