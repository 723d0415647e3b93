"""The Smart PBX client: one typed coroutine per API command, plus events.

How a command runs
    Arguments are validated first (:mod:`.validation`); a bad one raises
    PbxInvalidArgumentError and nothing is published. The transport must be connected
    (else PbxNotConnectedError, fail fast) and fewer than ``max_pending`` commands may be
    waiting (else PbxBusyError). The command is published with a fresh, unique
    ``request_id`` to its sub-topic, and the coroutine waits for the matching reply on the
    response topic, at most ``timeout`` seconds (PbxTimeoutError). A reply with status
    Failed raises PbxCommandFailedError carrying the PBX's message; a reply that cannot
    be read raises PbxMalformedReplyError. The pending entry is removed whatever happens:
    reply, timeout, cancellation or :meth:`SmartPbxClient.stop`.

    A command that is waiting when the connection drops keeps waiting until its timeout:
    the transport uses a persistent session with QoS 1, so a reply the PBX sent meanwhile
    is delivered after the reconnect.

Matching replies to commands
    The response topic is shared by every command, so replies are correlated:

    1. A reply carrying ``request_id`` (surrounding whitespace stripped: the vendor's own
       example echoes ``" e914b..."``) resolves the pending command with that id. A reply
       to an id nobody waits for (a command that timed out, or another client's command on
       the same token) is ignored with a debug log.
    2. A reply *without* ``request_id`` (the document has such examples) is attributed by
       its shape when it has one: ``deviceinfo`` → deviceInfo, ``extlist`` →
       extension_list, ``trunklist`` → trunk_list, ``livecall`` → livecall,
       ``queuelist`` → queue_list, ``conflist`` → conf_list, ``queue`` with ``params`` or
       ``members`` → queue_status *of that queue*, ``conf`` with ``members`` →
       conf_status *of that conference*, ``callid`` → dial or listen. It resolves the one
       pending command of that shape; when none or several are pending it is dropped with
       a warning (a shaped reply never resolves a command of another kind).
    3. A reply without ``request_id`` and without a recognisable shape (e.g. a bare
       ``{"status": "Failed", "message": ...}``) resolves the only pending command when
       exactly one is pending; otherwise it is dropped with a warning.

Events
    One subscription (``device/<token>/api/v1.0/+``) carries responses, events, CDRs and
    the device status. Messages are dispatched by the topic's last level. Events, CDRs
    and status messages are parsed and handed to every listener synchronously, in arrival
    order; a listener that raises is logged and the others still run. CDRs become
    CallRecord; a ``status`` message becomes ``UnknownEvent(event="status")`` (its payload
    is not documented: JSON objects are kept as is, plain text as ``{"payload": text}``).

Malformed input
    Payloads over MAX_PAYLOAD_BYTES are dropped before decoding. Payloads that are not
    UTF-8 JSON objects, or whose fields have the wrong types, are dropped. Each of these is
    logged at WARNING at most once a minute per topic kind (with a count of the ones
    suppressed meanwhile); nothing ever raises out of the transport's callback.

Counters
    :attr:`SmartPbxClient.stats` counts commands (sent, answered, failed, timed out) and
    inbound messages (events delivered, malformed or oversized ones dropped, replies nobody
    awaited); :attr:`SmartPbxClient.recent_replies` keeps the last few raw replies. Both
    are bounded and exist for diagnostics; the replies may hold conference PINs, so
    whoever shows them must redact them.

The token is a credential: it is never logged. Log lines name the topic kind only.
"""

# ruff: noqa: ASYNC109  # the contract's API takes a per-call timeout

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
import itertools
import logging
import re
import secrets
from typing import Any, Final

from . import validation
from .concurrency import first_failure_unwrapped
from .errors import (
    PbxBusyError,
    PbxCommandFailedError,
    PbxInvalidArgumentError,
    PbxMalformedReplyError,
    PbxNotConnectedError,
    PbxTimeoutError,
    PbxUnsupportedCommandError,
)
from .jsoncodec import JsonDecodeError, dumps, loads
from .models import (
    CommandReply,
    Conference,
    ConferenceStatus,
    DeviceInfo,
    DialResult,
    Extension,
    ExtensionCall,
    ListenMode,
    LiveCall,
    PbxEvent,
    Permission,
    Queue,
    QueueStatus,
    SystemSnapshot,
    TransferOperation,
    Trunk,
)
from .parsing import (
    MalformedPayloadError,
    parse_cdr,
    parse_conference_status,
    parse_conferences,
    parse_device_info,
    parse_device_status,
    parse_dial,
    parse_event,
    parse_extension_call,
    parse_extensions,
    parse_live_calls,
    parse_queue_status,
    parse_queues,
    parse_reply,
    parse_trunks,
)
from .ratelimit import RateLimitedWarnings
from .topics import CommandTopic, base_topic, command_topic, inbound_filter
from .transport import ConnectionCallback, Transport, Unsubscribe

_LOGGER = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 15.0
"""Seconds a command waits for its reply: the field norm (FIELD.md; one client uses 12 s)."""
MAX_PENDING = 2048
DEVICE_INFO_FIRST_WAIT = 0.5
"""Seconds :meth:`SmartPbxClient.device_info_within` waits for its first answer."""
MAX_PAYLOAD_BYTES: Final = 256 * 1024
"""Inbound payloads larger than this are dropped unread (a thousand extensions: ~100 KiB)."""
RECENT_REPLIES: Final = 8
"""How many raw replies :attr:`SmartPbxClient.recent_replies` keeps."""
STATUS_EVENT: Final = "status"
"""``DeviceStatusEvent.event`` (an UnknownEvent) of a message on the device status topic."""

type EventCallback = Callable[[PbxEvent], None]

# Topic kinds: the last level of device/<token>/api/v1.0/<kind>.
_RESPONSE: Final = "response"
_EVENT: Final = "event"
_CDR: Final = "cdr"
_STATUS: Final = "status"

# Reply keys that identify which command a reply answers (policy rule 2 above).
_SHAPE_BY_KEY: Final = {
    "deviceinfo": "deviceInfo",
    "extlist": "extension_list",
    "trunklist": "trunk_list",
    "livecall": "livecall",
    "queuelist": "queue_list",
    "conflist": "conf_list",
    "calllist": "livecall",  # field fact: live calls under calllist
}
_DIAL_LIKE: Final = frozenset({"dial", "listen"})
# Field fact: how firmware without a command answers it ("Failed", "unknown cmd").
_UNKNOWN_COMMAND_RE: Final = re.compile(
    r"unknown\s*(?:cmd|command)|(?:cmd|command)\s+(?:not\s+found|unknown)"
    r"|unsupported\s+(?:cmd|command)",
    re.IGNORECASE,
)


def is_unknown_command_reply(message: str) -> bool:
    """Whether a Failed reply's message says the firmware does not know the command."""
    return _UNKNOWN_COMMAND_RE.search(message) is not None


@dataclass(slots=True)
class ClientStats:
    """Running totals since the client was created (for diagnostics and soak tests)."""

    commands_sent: int = 0
    """Commands published to the broker."""
    commands_answered: int = 0
    """Commands that got a reply, whether it said Success or Failed."""
    commands_failed: int = 0
    """Commands the PBX answered with status Failed."""
    commands_timed_out: int = 0
    """Commands without a reply within their timeout."""
    events_received: int = 0
    """Events, CDRs and status messages parsed and handed to the listeners."""
    malformed_dropped: int = 0
    """Inbound messages dropped because they were not JSON objects of the right shape."""
    oversized_dropped: int = 0
    """Inbound messages dropped unread for being larger than MAX_PAYLOAD_BYTES."""
    unmatched_replies: int = 0
    """Replies to no pending command (late, another client's, or not attributable)."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _ReplyShape:
    """Which commands a reply without request_id can answer, and for which queue/conf."""

    commands: frozenset[str]
    subject: str | None = None


@dataclass(slots=True)
class _PendingCommand:
    command: str
    subject: str | None
    """The queue or conference a queue_status / conf_status asks about."""
    future: asyncio.Future[dict[str, Any]]

    def answers(self, shape: _ReplyShape) -> bool:
        return (
            not self.future.done()
            and self.command in shape.commands
            and (shape.subject is None or shape.subject == self.subject)
        )


def _reply_shape(reply: Mapping[str, Any]) -> _ReplyShape | None:
    for key, command in _SHAPE_BY_KEY.items():
        if key in reply:
            return _ReplyShape(frozenset({command}))
    if "queue" in reply and ("params" in reply or "members" in reply):
        return _ReplyShape(frozenset({"queue_status"}), _subject(reply.get("queue")))
    if "conf" in reply and "members" in reply:
        return _ReplyShape(frozenset({"conf_status"}), _subject(reply.get("conf")))
    if "channelid" in reply or "peerchannelid" in reply:
        return _ReplyShape(frozenset({"extcallinfo"}))
    if "callid" in reply:
        return _ReplyShape(_DIAL_LIKE)
    return None


def _subject(value: object) -> str | None:
    """A queue or conference number from a payload, as text."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _subject_of(command: str, fields: Mapping[str, Any]) -> str | None:
    if command == "queue_status":
        return _subject(fields.get("queue"))
    if command == "conf_status":
        return _subject(fields.get("conf"))
    return None


def _request_id_of(reply: Mapping[str, Any]) -> str | None:
    """The echoed request_id, stripped; None when absent or blank."""
    value = reply.get("request_id")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise MalformedPayloadError(f"'request_id' should be a string, got {type(value).__name__}")
    return value.strip() or None


class SmartPbxClient:
    """Talks to one PBX (identified by its token) through a Transport."""

    def __init__(
        self,
        transport: Transport,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_pending: int = MAX_PENDING,
        qos: int = 1,
    ) -> None:
        self._transport = transport
        self._token = validation.validate_token(token)
        self._timeout = validation.validate_timeout(timeout)
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise PbxInvalidArgumentError("max_pending", "must be a positive integer")
        if qos not in (0, 1, 2):
            raise PbxInvalidArgumentError("qos", "must be 0, 1 or 2")
        self._max_pending = max_pending
        self._qos = qos

        self._pending: dict[str, _PendingCommand] = {}
        # A random prefix per client keeps ids unique among every client on the broker;
        # the counter keeps them unique (and cheap) within this one.
        self._request_id_prefix = secrets.token_hex(6)
        self._request_counter = itertools.count(1)

        self._topic_prefix = base_topic(self._token) + "/"
        self._command_topics = {sub.value: command_topic(self._token, sub) for sub in CommandTopic}
        self._inbound_handlers: dict[str, Callable[[bytes], None]] = {
            _RESPONSE: self._handle_response,
            _EVENT: self._handle_event,
            _CDR: self._handle_cdr,
            _STATUS: self._handle_status,
        }
        self._event_listeners: list[EventCallback] = []
        self._unsubscribe: Unsubscribe | None = None
        self._starting = False
        self._warnings = RateLimitedWarnings(_LOGGER)
        self._stats = ClientStats()
        self._recent_replies: deque[tuple[str, dict[str, Any]]] = deque(maxlen=RECENT_REPLIES)

    @property
    def token(self) -> str:
        return self._token

    @property
    def stats(self) -> ClientStats:
        """Counters of commands and inbound messages (the live object; do not modify)."""
        return self._stats

    @property
    def recent_replies(self) -> tuple[tuple[str, dict[str, Any]], ...]:
        """The last RECENT_REPLIES ``(command, raw reply)`` pairs, oldest first.

        Raw: a conf_list reply holds the conference PINs. Redact before showing.
        """
        return tuple(self._recent_replies)

    @property
    def connected(self) -> bool:
        return self._transport.connected

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        """Subscribe to the PBX's response/event/cdr topics. Idempotent."""
        if self._unsubscribe is not None or self._starting:
            return
        self._starting = True
        try:
            self._unsubscribe = await self._transport.subscribe(
                inbound_filter(self._token), self._on_message, self._qos
            )
        finally:
            self._starting = False

    async def stop(self) -> None:
        """Unsubscribe and fail every pending command with PbxNotConnectedError."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        pending = list(self._pending.values())
        self._pending.clear()
        for entry in pending:
            if not entry.future.done():
                entry.future.set_exception(PbxNotConnectedError("the PBX client was stopped"))

    def add_event_listener(self, callback: EventCallback) -> Unsubscribe:
        """Called (synchronously, in order) for every parsed event and CDR."""
        self._event_listeners.append(callback)

        def remove() -> None:
            if callback in self._event_listeners:
                self._event_listeners.remove(callback)

        return remove

    def add_connection_listener(self, callback: ConnectionCallback) -> Unsubscribe:
        return self._transport.add_connection_listener(callback)

    # --- system ---
    async def device_info(self, *, timeout: float | None = None) -> DeviceInfo:
        raw = await self._execute(CommandTopic.SYSTEM, "deviceInfo", {}, timeout)
        return self._typed("deviceInfo", parse_device_info, raw)

    async def device_info_within(self, within: float) -> DeviceInfo:
        """Ask deviceInfo with a short wait, then twice as long each time, ``within`` s in all.

        A reply to a command published right after subscribing can reach the broker before
        the subscription does (Home Assistant's MQTT sends SUBSCRIBEs in batches) and be
        lost; asking again with growing waits covers that and a slow PBX, never abandoning
        one consistently slower than the first wait. Raises PbxTimeoutError after ``within``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        wait = DEVICE_INFO_FIRST_WAIT
        while (remaining := deadline - loop.time()) > 0:
            try:
                return await self.device_info(timeout=min(wait, remaining))
            except PbxTimeoutError:
                wait *= 2
        raise PbxTimeoutError("deviceInfo", within)

    async def extension_list(self, *, timeout: float | None = None) -> tuple[Extension, ...]:
        raw = await self._execute(CommandTopic.SYSTEM, "extension_list", {}, timeout)
        return self._typed("extension_list", parse_extensions, raw)

    async def trunk_list(self, *, timeout: float | None = None) -> tuple[Trunk, ...]:
        raw = await self._execute(CommandTopic.SYSTEM, "trunk_list", {}, timeout)
        return self._typed("trunk_list", parse_trunks, raw)

    async def system_snapshot(self, *, timeout: float | None = None) -> SystemSnapshot:
        """deviceInfo, extension_list and trunk_list at once; a failure cancels the others.

        Together, not one after another: each round trip can cost ~40 ms on a broker with
        Nagle's algorithm on.
        """
        with first_failure_unwrapped():
            async with asyncio.TaskGroup() as group:
                device_info = group.create_task(self.device_info(timeout=timeout))
                extensions = group.create_task(self.extension_list(timeout=timeout))
                trunks = group.create_task(self.trunk_list(timeout=timeout))
        return SystemSnapshot(
            device_info.result(),
            {extension.number: extension for extension in extensions.result()},
            {trunk.name: trunk for trunk in trunks.result()},
        )

    async def live_calls(self, *, timeout: float | None = None) -> tuple[LiveCall, ...]:
        raw = await self._execute(CommandTopic.SYSTEM, "livecall", {}, timeout)
        return self._typed("livecall", parse_live_calls, raw)

    # --- cfg ---
    async def extension_set(
        self,
        extension: str,
        *,
        logged_in: bool,
        permission: Permission,
        fullname: str | None = None,
        timeout: float | None = None,
    ) -> CommandReply:
        params: dict[str, str] = {
            # The wire says "logout status": 0 means logged in.
            "logout_status": "0" if validation.validate_flag(logged_in, "logged_in") else "1",
        }
        if fullname is not None:
            params["fullname"] = validation.validate_text(
                fullname, "fullname", max_length=validation.MAX_NAME_LENGTH, allow_empty=True
            )
        params["permission"] = validation.validate_permission(permission).value
        fields = {"extension": validation.validate_number(extension, "extension"), "params": params}
        raw = await self._execute(CommandTopic.CFG, "extension_set", fields, timeout)
        return self._typed("extension_set", parse_reply, raw)

    async def alarm_set(
        self,
        extension: str,
        *,
        start: str,
        clock_sound: str,
        cycle: int,
        times: int,
        days: int,
        timeout: float | None = None,
    ) -> CommandReply:
        fields = {
            "extension": validation.validate_number(extension, "extension"),
            "params": {
                "start": validation.validate_alarm_start(start),
                "clock_sound": validation.validate_file_name(clock_sound, "clock_sound"),
                "cycle": str(validation.validate_count(cycle, "cycle")),
                "times": str(validation.validate_count(times, "times", minimum=1)),
                "days": str(validation.validate_count(days, "days")),
            },
        }
        raw = await self._execute(CommandTopic.CFG, "alarm_set", fields, timeout)
        return self._typed("alarm_set", parse_reply, raw)

    # --- call ---
    async def dial(
        self,
        caller: str,
        callee: str,
        *,
        dialpermission: str | None = None,
        autoanswer: bool = False,
        timeout: float | None = None,
    ) -> DialResult:
        fields = {
            "caller": validation.validate_number(caller, "caller"),
            "callee": validation.validate_number(callee, "callee"),
        }
        if dialpermission is not None:
            fields["dialpermission"] = validation.validate_number(dialpermission, "dialpermission")
        if validation.validate_flag(autoanswer, "autoanswer"):
            fields["autoanswer"] = "yes"
        raw = await self._execute(CommandTopic.CALL, "dial", fields, timeout)
        return self._typed("dial", parse_dial, raw)

    async def hangup(
        self,
        callid: str | None = None,
        *,
        channel: str | None = None,
        timeout: float | None = None,
    ) -> CommandReply:
        """Hang up a call by its call id, or one channel by its name.

        Both field forms are sent as the field sends them: ``channel=`` goes out as
        ``channelid``; a channel name given as ``callid`` (``PJSIP/8001-0000001a``) goes
        out in ``callid``, as field clients put it there.
        """
        if (callid is None) == (channel is None):
            raise PbxInvalidArgumentError("callid", "give exactly one of callid or channel")
        if channel is not None:
            fields = {"channelid": validation.validate_channel(channel)}
        elif isinstance(callid, str) and "/" in callid:
            fields = {"callid": validation.validate_channel(callid, "callid")}
        else:
            fields = {"callid": validation.validate_callid(callid)}
        raw = await self._execute(CommandTopic.CALL, "hangup", fields, timeout)
        return self._typed("hangup", parse_reply, raw)

    async def extension_call(
        self, extension: str, *, timeout: float | None = None
    ) -> ExtensionCall | None:
        """``extcallinfo`` (field firmware): the extension's current call, None if none.

        Raises PbxUnsupportedCommandError on firmware without the command.
        """
        number = validation.validate_number(extension, "extension")
        raw = await self._execute(CommandTopic.CALL, "extcallinfo", {"extension": number}, timeout)
        return self._typed("extcallinfo", lambda reply: parse_extension_call(number, reply), raw)

    async def attended_transfer(
        self, channel: str, target: str, *, timeout: float | None = None
    ) -> CommandReply:
        """``atxfer`` (field firmware): start an attended transfer of ``channel`` to ``target``.

        ``channel`` is the channel to transfer (e.g. ExtensionCall.channel); finish it with
        :meth:`transfer_operate`. Raises PbxUnsupportedCommandError on older firmware.
        """
        fields = {
            "channelid": validation.validate_channel(channel),
            "tonumber": validation.validate_number(target, "target"),
        }
        raw = await self._execute(CommandTopic.CALL, "atxfer", fields, timeout)
        return self._typed("atxfer", parse_reply, raw)

    async def transfer_operate(
        self,
        channel: str,
        operation: TransferOperation | str,
        *,
        timeout: float | None = None,
    ) -> CommandReply:
        """``atxferoperate`` (field firmware): complete or cancel an attended transfer.

        ``complete`` is verified in the field; ``cancel`` is not (see TransferOperation).
        """
        fields = {
            "channelid": validation.validate_channel(channel),
            "operate": validation.validate_transfer_operation(operation).value,
        }
        raw = await self._execute(CommandTopic.CALL, "atxferoperate", fields, timeout)
        return self._typed("atxferoperate", parse_reply, raw)

    async def listen(
        self,
        monitor: str,
        extension: str,
        mode: ListenMode = ListenMode.LISTEN,
        *,
        timeout: float | None = None,
    ) -> DialResult:
        fields = {
            "monitor": validation.validate_number(monitor, "monitor"),
            "extension": validation.validate_number(extension, "extension"),
            "type": validation.validate_listen_mode(mode).value,
        }
        raw = await self._execute(CommandTopic.CALL, "listen", fields, timeout)
        return self._typed("listen", parse_dial, raw)

    # --- queue ---
    async def queue_list(self, *, timeout: float | None = None) -> tuple[Queue, ...]:
        raw = await self._execute(CommandTopic.QUEUE, "queue_list", {}, timeout)
        return self._typed("queue_list", parse_queues, raw)

    async def queue_status(self, queue: str, *, timeout: float | None = None) -> QueueStatus:
        fields = {"queue": validation.validate_number(queue, "queue")}
        raw = await self._execute(CommandTopic.QUEUE, "queue_status", fields, timeout)
        return self._typed("queue_status", parse_queue_status, raw)

    async def queue_add(
        self, queue: str, extension: str, *, timeout: float | None = None
    ) -> CommandReply:
        return await self._queue_member_command("queue_add", queue, extension, {}, timeout)

    async def queue_remove(
        self, queue: str, extension: str, *, timeout: float | None = None
    ) -> CommandReply:
        return await self._queue_member_command("queue_remove", queue, extension, {}, timeout)

    async def queue_pause(
        self, queue: str | None, extension: str, paused: bool, *, timeout: float | None = None
    ) -> CommandReply:
        """``queue_paused``: pause or unpause an agent in one queue, or in every queue.

        ``queue=None`` (or ``""``) sends ``queue: ""``, which field firmware reads as
        "every queue the agent is in"; the document's firmware may refuse it.
        """
        extra = {"paused": "yes" if validation.validate_flag(paused, "paused") else "no"}
        every_queue = queue is None or queue == ""
        return await self._queue_member_command(
            "queue_paused", None if every_queue else queue, extension, extra, timeout
        )

    async def _queue_member_command(
        self,
        command: str,
        queue: str | None,
        extension: str,
        extra: Mapping[str, str],
        timeout: float | None,
    ) -> CommandReply:
        fields = {
            "queue": "" if queue is None else validation.validate_number(queue, "queue"),
            "extension": validation.validate_number(extension, "extension"),
            **extra,
        }
        raw = await self._execute(CommandTopic.QUEUE, command, fields, timeout)
        return self._typed(command, parse_reply, raw)

    # --- conf ---
    async def conf_list(self, *, timeout: float | None = None) -> tuple[Conference, ...]:
        raw = await self._execute(CommandTopic.CONF, "conf_list", {}, timeout)
        return self._typed("conf_list", parse_conferences, raw)

    async def conf_status(
        self, conference: str, *, timeout: float | None = None
    ) -> ConferenceStatus:
        fields = {"conf": validation.validate_number(conference, "conference")}
        raw = await self._execute(CommandTopic.CONF, "conf_status", fields, timeout)
        return self._typed("conf_status", parse_conference_status, raw)

    async def conf_invite(
        self,
        conference: str,
        member: str,
        dialpermission: str,
        *,
        timeout: float | None = None,
    ) -> CommandReply:
        fields = {
            "conf": validation.validate_number(conference, "conference"),
            "dialpermission": validation.validate_number(dialpermission, "dialpermission"),
            "member": validation.validate_number(member, "member"),
        }
        raw = await self._execute(CommandTopic.CONF, "conf_invite", fields, timeout)
        return self._typed("conf_invite", parse_reply, raw)

    async def conf_kick(
        self, conference: str, channel: str, *, timeout: float | None = None
    ) -> CommandReply:
        return await self._conf_channel_command("conf_kick", conference, channel, timeout)

    async def conf_mute(
        self, conference: str, channel: str, *, timeout: float | None = None
    ) -> CommandReply:
        return await self._conf_channel_command("conf_mute", conference, channel, timeout)

    async def conf_unmute(
        self, conference: str, channel: str, *, timeout: float | None = None
    ) -> CommandReply:
        return await self._conf_channel_command("conf_unmute", conference, channel, timeout)

    async def _conf_channel_command(
        self, command: str, conference: str, channel: str, timeout: float | None
    ) -> CommandReply:
        fields = {
            "conf": validation.validate_number(conference, "conference"),
            "channel": validation.validate_channel(channel),
        }
        raw = await self._execute(CommandTopic.CONF, command, fields, timeout)
        return self._typed(command, parse_reply, raw)

    # --- anything else ---
    async def command(
        self,
        sub_topic: str,
        payload: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> CommandReply:
        """Send a raw command (``cmd`` in payload); a fresh request_id is added.

        Raises PbxCommandFailedError when the PBX answers Failed.
        """
        sub = validation.validate_sub_topic(sub_topic)
        fields = validation.validate_raw_command(payload)
        command = fields.pop("cmd")
        raw = await self._execute(sub, command, fields, timeout)
        return self._typed(command, parse_reply, raw)

    # --- request/reply machinery ---
    def _new_request_id(self) -> str:
        return f"{self._request_id_prefix}{next(self._request_counter):x}"

    async def _execute(
        self,
        sub_topic: str,
        command: str,
        fields: Mapping[str, Any],
        timeout: float | None,
    ) -> dict[str, Any]:
        """Publish one command and return its reply; raise if it says Failed."""
        seconds = self._timeout if timeout is None else validation.validate_timeout(timeout)
        request_id = self._new_request_id()
        try:
            data = dumps({"cmd": command, "request_id": request_id, **fields})
        except TypeError as err:  # e.g. an integer beyond 64 bits in a raw command
            raise PbxInvalidArgumentError("payload", f"cannot be sent as JSON: {err}") from None
        if len(data) > validation.MAX_COMMAND_BYTES:
            raise PbxInvalidArgumentError(
                "payload", f"larger than {validation.MAX_COMMAND_BYTES} bytes"
            )
        if self._unsubscribe is None:
            raise PbxNotConnectedError("the PBX client is not started")
        if not self._transport.connected:
            raise PbxNotConnectedError("not connected to the MQTT broker")
        if len(self._pending) >= self._max_pending:
            raise PbxBusyError(f"{len(self._pending)} commands are already awaiting replies")
        topic = self._command_topics.get(sub_topic) or command_topic(self._token, sub_topic)

        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = _PendingCommand(command, _subject_of(command, fields), future)
        try:
            async with asyncio.timeout(seconds):
                await self._transport.publish(topic, data, self._qos)
                self._stats.commands_sent += 1
                raw = await future
        except TimeoutError:
            self._stats.commands_timed_out += 1
            raise PbxTimeoutError(command, seconds) from None
        finally:
            self._pending.pop(request_id, None)
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # mark retrieved: stop() may fail it while we publish

        self._stats.commands_answered += 1
        self._recent_replies.append((command, raw))
        reply = self._typed(command, parse_reply, raw)
        if not reply.success:
            self._stats.commands_failed += 1
            if is_unknown_command_reply(reply.message):
                raise PbxUnsupportedCommandError(command, reply.message, raw)
            raise PbxCommandFailedError(command, reply.message, raw)
        return raw

    def _typed[T](
        self, command: str, parser: Callable[[dict[str, Any]], T], raw: dict[str, Any]
    ) -> T:
        try:
            return parser(raw)
        except MalformedPayloadError as err:
            _LOGGER.debug("Unreadable reply to %s: %s", command, err)
            raise PbxMalformedReplyError(command, str(err), raw) from err

    # --- inbound messages ---
    def _on_message(self, topic: str, payload: bytes) -> None:
        """Transport callback for everything under device/<token>/api/v1.0/+."""
        kind = topic[len(self._topic_prefix) :] if topic.startswith(self._topic_prefix) else ""
        handler = self._inbound_handlers.get(kind)
        if handler is None:
            _LOGGER.debug("Ignoring a message on an unexpected topic kind %r", kind[:32])
            return
        if len(payload) > MAX_PAYLOAD_BYTES:
            self._stats.oversized_dropped += 1
            self._warnings.warning(
                kind,
                "Dropping a %d-byte %s message from the PBX: larger than %d bytes",
                len(payload),
                kind,
                MAX_PAYLOAD_BYTES,
            )
            return
        try:
            handler(payload)
        except Exception:  # never let one bad message break the transport's loop
            _LOGGER.exception("Unexpected error handling a %s message from the PBX", kind)

    def _decode_object(self, kind: str, payload: bytes) -> dict[str, Any] | None:
        try:
            decoded = loads(payload)
        except JsonDecodeError as err:
            self._stats.malformed_dropped += 1
            self._warnings.warning(
                kind, "Dropping a %s message from the PBX that is not UTF-8 JSON: %s", kind, err
            )
            return None
        if not isinstance(decoded, dict):
            self._stats.malformed_dropped += 1
            self._warnings.warning(
                kind,
                "Dropping a %s message from the PBX that is not a JSON object but %s",
                kind,
                type(decoded).__name__,
            )
            return None
        return decoded

    def _handle_response(self, payload: bytes) -> None:
        reply = self._decode_object(_RESPONSE, payload)
        if reply is None:
            return
        try:
            request_id = _request_id_of(reply)
        except MalformedPayloadError as err:
            self._stats.malformed_dropped += 1
            self._warnings.warning(
                _RESPONSE, "Dropping a malformed response message from the PBX: %s", err
            )
            return
        if request_id is not None:
            entry = self._pending.get(request_id)
            if entry is None:
                self._stats.unmatched_replies += 1
                _LOGGER.debug("Ignoring a reply to request %s that nobody awaits", request_id[:64])
                return
        else:
            entry = self._attribute_reply_without_id(reply)
            if entry is None:
                self._stats.unmatched_replies += 1
                return
        if not entry.future.done():
            entry.future.set_result(reply)

    def _attribute_reply_without_id(self, reply: Mapping[str, Any]) -> _PendingCommand | None:
        """Policy rules 2 and 3 of the module docstring."""
        shape = _reply_shape(reply)
        if shape is not None:
            candidates = [entry for entry in self._pending.values() if entry.answers(shape)]
            if len(candidates) == 1:
                return candidates[0]
            self._warnings.warning(
                "unattributed",
                "Dropping a %s reply without request_id: %d such commands are pending",
                "/".join(sorted(shape.commands)),
                len(candidates),
            )
            return None
        waiting = [entry for entry in self._pending.values() if not entry.future.done()]
        if len(waiting) == 1:
            return waiting[0]
        self._warnings.warning(
            "unattributed",
            "Dropping a reply without request_id: %d commands are pending",
            len(waiting),
        )
        return None

    def _handle_event(self, payload: bytes) -> None:
        self._deliver(_EVENT, payload, parse_event)

    def _handle_cdr(self, payload: bytes) -> None:
        self._deliver(_CDR, payload, parse_cdr)

    def _handle_status(self, payload: bytes) -> None:
        # Field fact: {"status": "online"|"offline"}; plain text is accepted as well.
        try:
            decoded: object = loads(payload)
        except JsonDecodeError:
            try:
                decoded = payload.decode().strip()
            except UnicodeDecodeError:
                self._stats.malformed_dropped += 1
                self._warnings.warning(
                    _STATUS, "Dropping a status message from the PBX that is not UTF-8"
                )
                return
        self._notify(parse_device_status(decoded))

    def _deliver(
        self, kind: str, payload: bytes, parse: Callable[[dict[str, Any]], PbxEvent]
    ) -> None:
        decoded = self._decode_object(kind, payload)
        if decoded is None:
            return
        try:
            event = parse(decoded)
        except MalformedPayloadError as err:
            self._stats.malformed_dropped += 1
            self._warnings.warning(
                kind, "Dropping a malformed %s message from the PBX: %s", kind, err
            )
            return
        self._notify(event)

    def _notify(self, event: PbxEvent) -> None:
        self._stats.events_received += 1
        # A snapshot: a listener may remove itself (or others) while being called.
        for listener in tuple(self._event_listeners):
            try:
                listener(event)
            except Exception:
                _LOGGER.exception("Error in a PBX event listener")
