"""Seed the demo's Home Assistant through its own REST and WebSocket APIs.

The demo goes through Home Assistant's real onboarding and the integration's real config
flow, as a person would in the browser, instead of forging Home Assistant's private
``.storage`` files. Only two of those are written before a start, because no API can set
them beforehand: the HTTP server's address (Home Assistant 2026 keeps it in storage, and
a YAML ``http:`` section would be staged as a five-minute trial followed by a restart),
and, on a fresh config, the onboarding steps the demo skips (location, analytics, and
the integration discovery page: those would set up integrations that go on the internet).

DEMO ONLY: the user, password and token below are fixed, documented demo credentials.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
import itertools
import json
import os
from pathlib import Path
import re
import time
from typing import Any

import aiohttp
import yaml  # type: ignore[import-untyped]

DEMO_USER_NAME = "Demo"
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"  # the demo's documented, fixed credential

DOMAIN = "smartpbx"
DASHBOARD_URL_PATH = "smart-pbx"
DASHBOARD_FILENAME = "smartpbx-dashboard.yaml"

_HTTP_STORAGE_VERSION = (2, 2)
_ONBOARDING_STORAGE_VERSION = 4
_ONBOARDING_STEPS_SKIPPED = ["core_config", "analytics", "integration"]
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60)


class BootstrapError(Exception):
    """Something the demo cannot fix by itself; the message says what to do."""


# --------------------------------------------------------------------------------------
# Files written before Home Assistant starts


def _write_storage(config_dir: Path, key: str, version: tuple[int, int], data: Any) -> None:
    storage = config_dir / ".storage"
    storage.mkdir(parents=True, exist_ok=True)
    document = {"version": version[0], "minor_version": version[1], "key": key, "data": data}
    target = storage / key
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(target)


def seed_storage(config_dir: Path, *, listen: str, port: int) -> None:
    """Write the HTTP server's address, and on a fresh config the skipped onboarding steps."""
    http_config = {
        "server_host": [listen],
        "server_port": port,
        "cors_allowed_origins": ["https://cast.home-assistant.io"],
        "login_attempts_threshold": -1,
        "ip_ban_enabled": True,
        "ssl_profile": "modern",
        "use_x_frame_options": True,
        "created_at": datetime.now(UTC).isoformat(),
        "error": None,
        "error_message": None,
    }
    _write_storage(
        config_dir,
        "http",
        _HTTP_STORAGE_VERSION,
        {"stable": http_config, "pending": None, "yaml_migration_done": True},
    )
    if not (config_dir / ".storage" / "onboarding").exists():
        _write_storage(
            config_dir,
            "onboarding",
            (_ONBOARDING_STORAGE_VERSION, 1),
            {"done": list(_ONBOARDING_STEPS_SKIPPED)},
        )


# --------------------------------------------------------------------------------------
# A small client of Home Assistant's REST and WebSocket APIs


class HomeAssistantApi:
    """Talks to one Home Assistant as the demo user."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self.base_url = base_url.rstrip("/")
        self._client_id = f"{self.base_url}/"
        self._token: str | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_reader: asyncio.Task[None] | None = None
        self._ws_ids = itertools.count(1)
        self._ws_pending: dict[int, asyncio.Future[Any]] = {}
        self._ws_subscribers: dict[int, Callable[[dict[str, Any]], None]] = {}

    # -- plumbing ----------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def request(
        self, method: str, path: str, *, json_body: Any = None, expect: tuple[int, ...] = (200,)
    ) -> Any:
        async with self._session.request(
            method,
            self.base_url + path,
            json=json_body,
            headers=self._headers(),
            timeout=_REQUEST_TIMEOUT,
        ) as response:
            text = await response.text()
            if response.status not in expect:
                raise BootstrapError(f"{method} {path} answered {response.status}: {text[:500]}")
            return json.loads(text) if text else None

    async def get(self, path: str) -> Any:
        return await self.request("GET", path)

    async def post(self, path: str, body: Any) -> Any:
        return await self.request("POST", path, json_body=body)

    # -- start-up ----------------------------------------------------------------------

    async def wait_until_serving(self, deadline: float, still_running: Callable[[], bool]) -> None:
        """Wait until the HTTP server answers (on a page that needs no login).

        /auth/providers says 200, or 400 while onboarding has no user yet: either way
        the server is up.
        """
        while True:
            if not still_running():
                raise BootstrapError("Home Assistant exited during start-up")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._session.get(
                    f"{self.base_url}/auth/providers", timeout=aiohttp.ClientTimeout(total=5)
                ) as response:
                    if response.status in (200, 400):
                        return
            if time.monotonic() > deadline:
                raise BootstrapError(f"Home Assistant did not serve {self.base_url} in time")
            await asyncio.sleep(0.5)

    async def onboard_or_log_in(self) -> bool:
        """Log in as the demo user, creating it through onboarding on a fresh config.

        Returns whether onboarding created the user just now.
        """
        onboarded_now = False
        async with self._session.get(
            f"{self.base_url}/api/onboarding", timeout=_REQUEST_TIMEOUT
        ) as response:
            steps = await response.json() if response.status == 200 else []
        user_step_pending = any(s.get("step") == "user" and not s.get("done") for s in steps)
        if user_step_pending:
            answer = await self.post(
                "/api/onboarding/users",
                {
                    "client_id": self._client_id,
                    "name": DEMO_USER_NAME,
                    "username": DEMO_USERNAME,
                    "password": DEMO_PASSWORD,
                    "language": "en",
                },
            )
            code = answer["auth_code"]
            onboarded_now = True
        else:
            code = await self._log_in_with_password()
        async with self._session.post(
            f"{self.base_url}/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": self._client_id},
            timeout=_REQUEST_TIMEOUT,
        ) as response:
            if response.status != 200:
                raise BootstrapError(f"Could not get an access token ({response.status})")
            self._token = (await response.json())["access_token"]
        return onboarded_now

    async def _log_in_with_password(self) -> str:
        flow = await self.post(
            "/auth/login_flow",
            {
                "client_id": self._client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": f"{self.base_url}/?auth_callback=1",
            },
        )
        result = await self.post(
            f"/auth/login_flow/{flow['flow_id']}",
            {"client_id": self._client_id, "username": DEMO_USERNAME, "password": DEMO_PASSWORD},
        )
        if result.get("type") != "create_entry":
            raise BootstrapError(
                f"The demo user {DEMO_USERNAME!r} cannot log in any more (was its password "
                "changed?). Start afresh with: scripts/develop --reset"
            )
        return str(result["result"])

    async def wait_until_running(self, deadline: float) -> dict[str, Any]:
        """Wait until Home Assistant has finished starting; returns /api/config."""
        while True:
            config: dict[str, Any] = await self.get("/api/config")
            if config.get("state") == "RUNNING":
                return config
            if time.monotonic() > deadline:
                raise BootstrapError(f"Home Assistant stayed in state {config.get('state')}")
            await asyncio.sleep(0.5)

    # -- WebSocket ---------------------------------------------------------------------

    async def _websocket(self) -> aiohttp.ClientWebSocketResponse:
        if self._ws is not None and not self._ws.closed:
            return self._ws
        ws = await self._session.ws_connect(
            f"{self.base_url}/api/websocket", max_msg_size=0, timeout=aiohttp.ClientWSTimeout()
        )
        await ws.receive_json()  # auth_required
        await ws.send_json({"type": "auth", "access_token": self._token})
        answer = await ws.receive_json()
        if answer.get("type") != "auth_ok":
            raise BootstrapError(f"WebSocket login failed: {answer}")
        self._ws = ws
        self._ws_reader = asyncio.create_task(self._read_websocket(ws))
        return ws

    async def _read_websocket(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            payload = json.loads(message.data)
            for item in payload if isinstance(payload, list) else [payload]:
                self._dispatch(item)
        for future in self._ws_pending.values():
            if not future.done():
                future.set_exception(BootstrapError("WebSocket closed"))

    def _dispatch(self, item: dict[str, Any]) -> None:
        if item.get("type") == "event":
            if (subscriber := self._ws_subscribers.get(item["id"])) is not None:
                subscriber(item["event"])
            return
        future = self._ws_pending.pop(item.get("id", -1), None)
        if future is None or future.done():
            return
        if item.get("success"):
            future.set_result(item.get("result"))
        else:
            future.set_exception(BootstrapError(f"WebSocket command failed: {item.get('error')}"))

    async def ws_command(self, command: str, **fields: Any) -> Any:
        ws = await self._websocket()
        message_id = next(self._ws_ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._ws_pending[message_id] = future
        await ws.send_json({"id": message_id, "type": command, **fields})
        return await asyncio.wait_for(future, 60)

    async def subscribe_events(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Hand every event on Home Assistant's bus to ``callback``."""
        ws = await self._websocket()
        message_id = next(self._ws_ids)
        self._ws_subscribers[message_id] = callback
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._ws_pending[message_id] = future
        await ws.send_json({"id": message_id, "type": "subscribe_events"})
        await asyncio.wait_for(future, 60)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._ws_reader is not None:
            self._ws_reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ws_reader


# --------------------------------------------------------------------------------------
# The integration's config entry, made through its real config flow


def _flow_answers(
    form: Mapping[str, Any], known: Mapping[str, Any], flow_step: str
) -> dict[str, Any]:
    """Fill a config-flow form from the values the demo knows, leaving defaults alone."""
    answers: dict[str, Any] = {}
    for field_schema in form.get("data_schema", []):
        name = field_schema["name"]
        if name in known:
            answers[name] = known[name]
        elif field_schema.get("required") and "default" not in field_schema:
            raise BootstrapError(
                f"The config flow's step {flow_step!r} asks for {name!r}, which the demo "
                "does not know: update demo/bootstrap.py"
            )
    return answers


async def _run_config_flow(
    api: HomeAssistantApi, known: Mapping[str, Any], deadline: float
) -> dict[str, Any]:
    """Go through the integration's config flow like the UI does; returns the new entry."""
    result = await api.post(
        "/api/config/config_entries/flow", {"handler": DOMAIN, "show_advanced_options": True}
    )
    retries = 10
    while True:
        kind = result.get("type")
        step = str(result.get("step_id"))
        if kind == "create_entry":
            entry: dict[str, Any] = result["result"]
            return entry
        if kind == "abort":
            raise BootstrapError(f"The config flow aborted: {result.get('reason')}")
        if kind == "menu":
            options = list(result.get("menu_options") or [])
            choice = next((o for o in options if "direct" in o), None)
            if choice is None:
                raise BootstrapError(f"The config flow's menu has no direct option: {options}")
            body: dict[str, Any] = {"next_step_id": choice}
        elif kind == "form":
            if errors := result.get("errors"):
                # The simulator may still be connecting: the flow keeps the step, so the
                # same answers can be sent again after a moment.
                retries -= 1
                if retries < 0 or time.monotonic() > deadline:
                    raise BootstrapError(f"The config flow's step {step!r} failed: {errors}")
                await asyncio.sleep(2)
            body = _flow_answers(result, known, step)
        else:
            raise BootstrapError(f"Unexpected config flow result: {result}")
        result = await api.post(f"/api/config/config_entries/flow/{result['flow_id']}", body)


async def ensure_config_entry(
    api: HomeAssistantApi,
    *,
    broker_host: str,
    broker_port: int,
    token: str,
    state_file: Path,
    within: float,
) -> tuple[dict[str, Any], bool]:
    """Make sure one loaded smartpbx entry points at the demo broker.

    Returns the entry and whether it was created just now. An entry left from a run with
    another broker port is removed and made again through the config flow.
    """
    deadline = time.monotonic() + within
    wanted = {"broker": f"{broker_host}:{broker_port}", "token": token}
    remembered: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        remembered = json.loads(state_file.read_text(encoding="utf-8"))
    entries: list[dict[str, Any]] = await api.get(
        f"/api/config/config_entries/entry?domain={DOMAIN}"
    )
    created = False
    if entries and remembered.get("entry") == wanted and len(entries) == 1:
        entry = entries[0]
    else:
        for stale in entries:
            await api.request("DELETE", f"/api/config/config_entries/entry/{stale['entry_id']}")
        known = {
            "host": broker_host,
            "port": broker_port,
            "token": token,
            "tls": False,
            "verify_ssl": True,  # the form's default; it only matters with TLS
        }
        entry = await _run_config_flow(api, known, deadline)
        created = True
        state_file.write_text(json.dumps({"entry": wanted}) + "\n", encoding="utf-8")
    while entry.get("state") != "loaded":
        if time.monotonic() > deadline:
            raise BootstrapError(
                f"The smartpbx entry did not load: {entry.get('state')} {entry.get('reason')}"
            )
        await asyncio.sleep(1)
        entries = await api.get(f"/api/config/config_entries/entry?domain={DOMAIN}")
        entry = next((e for e in entries if e["entry_id"] == entry["entry_id"]), entry)
    return entry, created


async def ensure_phonebook(
    api: HomeAssistantApi, entry_id: str, phonebook: str, *, within: float = 60.0
) -> bool:
    """Give the entry the demo's phonebook through the integration's real options flow.

    Italy's dial plan (country code 39, no trunk prefix to drop): the simulator's callers
    arrive in Italian national and international forms. Returns whether the options
    changed, which reloads the entry.
    """
    options = {
        "phonebook": phonebook,
        "phonebook_file": "",
        "country_code": "39",
        "trunk_prefix": "",
        "international_prefix": "00",
        "outside_line_prefix": "",
    }
    deadline = time.monotonic() + within
    entries = await api.get(f"/api/config/config_entries/entry?domain={DOMAIN}")
    before = next((e for e in entries if e["entry_id"] == entry_id), {}).get("modified_at")
    result = await api.post("/api/config/config_entries/options/flow", {"handler": entry_id})
    result = await api.post(f"/api/config/config_entries/options/flow/{result['flow_id']}", options)
    if result.get("type") != "create_entry":
        raise BootstrapError(f"The options flow refused the demo's phonebook: {result}")
    changed = False
    while True:  # changed options reload the entry: wait until it is back
        entries = await api.get(f"/api/config/config_entries/entry?domain={DOMAIN}")
        entry = next((e for e in entries if e["entry_id"] == entry_id), {})
        changed = changed or entry.get("modified_at") != before
        if not changed or entry.get("state") == "loaded":
            return changed
        if time.monotonic() > deadline:
            raise BootstrapError(f"The smartpbx entry did not reload: {entry.get('state')}")
        await asyncio.sleep(0.5)


# --------------------------------------------------------------------------------------
# What the integration made: devices, entities and their states


_KINDS = ("extension", "trunk", "queue", "conference")


@dataclass
class PbxDevice:
    """One device of the integration, with its entities in display order."""

    kind: str  # "pbx" or one of _KINDS
    key: str  # the number (extension, queue, conference), trunk name, or serial
    name: str
    model: str | None
    entities: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Inventory:
    """The integration's devices and entities in one Home Assistant, with states."""

    devices: list[PbxDevice]
    states: dict[str, dict[str, Any]]

    def of_kind(self, kind: str) -> list[PbxDevice]:
        return [device for device in self.devices if device.kind == kind]

    @property
    def entity_ids(self) -> list[str]:
        return [entity["entity_id"] for device in self.devices for entity in device.entities]


def _number_first(key: str) -> tuple[int, str]:
    return (int(key), key) if key.isdigit() else (1 << 30, key)


def _classify(identifier: str, serials: set[str]) -> tuple[str, str]:
    if identifier in serials:
        return "pbx", identifier
    for serial in serials:
        for kind in _KINDS:
            prefix = f"{serial}_{kind}_"
            if identifier.startswith(prefix):
                return kind, identifier.removeprefix(prefix)
    return "other", identifier


_DOMAIN_ORDER = {"sensor": 0, "binary_sensor": 1, "switch": 2, "button": 3, "event": 4}


async def load_inventory(api: HomeAssistantApi, entry_id: str) -> Inventory:
    devices: list[dict[str, Any]] = await api.ws_command("config/device_registry/list")
    entities: list[dict[str, Any]] = await api.ws_command("config/entity_registry/list")
    states = {state["entity_id"]: state for state in await api.get("/api/states")}
    ours = [d for d in devices if entry_id in d.get("config_entries", [])]
    identifiers = {
        d["id"]: next((value for domain, value in d["identifiers"] if domain == DOMAIN), "")
        for d in ours
    }
    serials = {value for value in identifiers.values() if value and "_" not in value}
    by_id: dict[str, PbxDevice] = {}
    for device in ours:
        kind, key = _classify(identifiers[device["id"]], serials)
        by_id[device["id"]] = PbxDevice(
            kind=kind,
            key=key,
            name=device.get("name_by_user") or device.get("name") or key,
            model=device.get("model"),
        )
    for entity in entities:
        if entity.get("config_entry_id") != entry_id or entity.get("disabled_by"):
            continue
        if (owner := by_id.get(entity.get("device_id") or "")) is not None:
            owner.entities.append(entity)
    for pbx_device in by_id.values():
        pbx_device.entities.sort(
            key=lambda e: (
                e.get("entity_category") is not None,
                _DOMAIN_ORDER.get(e["entity_id"].split(".")[0], 9),
                e["entity_id"],
            )
        )
    ordered = sorted(
        by_id.values(),
        key=lambda d: (
            (("pbx", *_KINDS).index(d.kind) if d.kind != "other" else 9),
            _number_first(d.key),
        ),
    )
    return Inventory(devices=ordered, states=states)


async def wait_for_entities(
    api: HomeAssistantApi, entry_id: str, *, within: float, settle: float = 3.0
) -> Inventory:
    """Wait until the entry's entities exist and have states, and their count settles."""
    deadline = time.monotonic() + within
    previous = -1
    stable_since = time.monotonic()
    while True:
        inventory = await load_inventory(api, entry_id)
        ids = inventory.entity_ids
        missing = [entity_id for entity_id in ids if entity_id not in inventory.states]
        if len(ids) != previous or missing:
            previous = len(ids)
            stable_since = time.monotonic()
        elif ids and time.monotonic() - stable_since >= settle:
            return inventory
        if time.monotonic() > deadline:
            raise BootstrapError(
                f"The smartpbx entities did not appear in time ({len(ids)} registered, "
                f"{len(missing)} without a state)"
            )
        await asyncio.sleep(1)


def summarize_entities(inventory: Inventory) -> tuple[Counter[str], list[str]]:
    """Entity count per platform, and the entities whose state is unavailable."""
    per_domain: Counter[str] = Counter(
        entity_id.split(".")[0] for entity_id in inventory.entity_ids
    )
    unavailable = [
        entity_id
        for entity_id in inventory.entity_ids
        if inventory.states.get(entity_id, {}).get("state") in ("unavailable", None)
    ]
    return per_domain, unavailable


# --------------------------------------------------------------------------------------
# The dashboard, built from what the integration really made
#
# Entities are picked by their translation keys (stable, and the same in every
# language), never by entity ids, which follow device names and the user's renames.


def _entity_key(entity: Mapping[str, Any]) -> str:
    return str(entity.get("translation_key") or "")


def _find(device: PbxDevice, *keys: str) -> list[dict[str, Any]]:
    """The device's entities with these translation keys, in the order of ``keys``."""
    return [e for key in keys for e in device.entities if _entity_key(e) == key]


def _short_name(inventory: Inventory, entity: Mapping[str, Any], device: PbxDevice) -> str:
    """The entity's own name, without its device's name in front."""
    friendly = str(
        inventory.states.get(entity["entity_id"], {}).get("attributes", {}).get("friendly_name")
        or entity.get("original_name")
        or entity["entity_id"]
    )
    return friendly.removeprefix(device.name).strip() or friendly


def _extension_label(device: PbxDevice) -> str:
    """ "8004 Lobby" from the device "Extension 8004 Lobby"; just the number if unnamed."""
    person = device.name.removeprefix("Extension").strip().removeprefix(device.key).strip()
    return f"{device.key} {person}".strip()


def _rows(
    inventory: Inventory, device: PbxDevice, entities: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    return [{"entity": e["entity_id"], "name": _short_name(inventory, e, device)} for e in entities]


def _heading(text: str, icon: str) -> dict[str, Any]:
    return {"type": "heading", "heading": text, "icon": icon}


_ACTIVE_CALLS_TEMPLATE = """\
{%- set calls = state_attr('ENTITY', 'calls') or [] -%}
{%- set names = NAMES -%}
{%- set icons = {'Inbound': 'mdi:phone-incoming', 'Outbound': 'mdi:phone-outgoing',
                 'Internal': 'mdi:deskphone'} -%}
{%- if calls | count == 0 -%}
No calls right now.
{%- else -%}
| | From | To | Time |
|:-:|:--|:--|--:|
{%- for call in calls %}
{%- set ringing = call.state | lower in ('ring', 'ringing') %}
| <ha-icon icon="{{ 'mdi:phone-ring' if ringing else icons.get(call.direction, 'mdi:phone') }}">\
</ha-icon> \
| {{ call.caller_name or names.get(call.caller | string, call.caller) }} \
| {{ call.called_name or names.get(call.called | string, call.called) }} \
| {{ 'ringing' if ringing else '%d:%02d' % ((call.duration | int(0)) // 60, \
(call.duration | int(0)) % 60) }} |
{%- endfor %}
{%- endif %}"""


_RECENT_CALLS_TEMPLATE = """\
{%- set calls = (state_attr('ENTITY', 'calls') or [])[:10] -%}
{%- set icons = {'answered': 'mdi:phone-check', 'no_answer': 'mdi:phone-missed',
                 'busy': 'mdi:phone-cancel', 'failed': 'mdi:phone-alert'} -%}
{%- if calls | count == 0 -%}
No calls yet.
{%- else -%}
| | From | To | When | Talked |
|:-:|:--|:--|:--|--:|
{%- for call in calls %}
| <ha-icon icon="{{ icons.get(call.disposition, 'mdi:phone') }}"></ha-icon> \
| {{ call.from_name or call['from'] }} \
| {{ call.to_name or call.to }} \
| {{ as_datetime(call.time) | as_local | as_timestamp | timestamp_custom('%H:%M') }} \
| {{ '%d:%02d' % ((call.duration | int(0)) // 60, (call.duration | int(0)) % 60) }} |
{%- endfor %}
{%- endif %}"""


def _recent_calls_card(entity_id: str) -> dict[str, Any]:
    """The last calls, with the names the phonebook gave them, from Recent calls."""
    content = _RECENT_CALLS_TEMPLATE.replace("ENTITY", entity_id)
    return {"type": "markdown", "content": content, "text_only": True}


def _active_calls_card(inventory: Inventory, entity_id: str) -> dict[str, Any]:
    """A live table of the PBX's calls, from the active-calls sensor's ``calls`` list."""
    names = {
        d.key: label
        for d in inventory.of_kind("extension")
        if (label := _extension_label(d)) != d.key
    }
    names |= {d.key: d.name for d in inventory.of_kind("queue")}
    names |= {d.key: f"Conf. {d.key}" for d in inventory.of_kind("conference")}
    names_literal = json.dumps(names, ensure_ascii=False, indent=2).replace("\n", "\n  ")
    content = _ACTIVE_CALLS_TEMPLATE.replace("ENTITY", entity_id).replace("NAMES", names_literal)
    return {"type": "markdown", "content": content, "text_only": True}


# Short labels for the PBX's counters: the tiles are half a column wide.
_TILE_LABELS = {
    "active_calls": "Active calls",
    "calls_today": "Calls today",
    "missed_calls_today": "Missed today",
    "extensions_online": "Phones online",
}


def _overview_cards(inventory: Inventory, pbx: PbxDevice) -> list[dict[str, Any]]:
    """Counters, the last call, a graph of active calls, the calls now and the last ones."""
    cards: list[dict[str, Any]] = [_heading(pbx.name, "mdi:phone-classic")]
    cards += [
        {
            "type": "tile",
            "entity": e["entity_id"],
            "name": _TILE_LABELS[_entity_key(e)],
            "grid_options": {"columns": 6},
        }
        for e in _find(pbx, *_TILE_LABELS)
    ]
    for last_call in _find(pbx, "last_call"):
        cards.append(
            {
                "type": "tile",
                "entity": last_call["entity_id"],
                "name": _short_name(inventory, last_call, pbx),
                "grid_options": {"columns": 12},
            }
        )
    for active in _find(pbx, "active_calls"):
        cards += [
            {
                "type": "history-graph",
                "entities": [{"entity": active["entity_id"], "name": "Active calls"}],
                "hours_to_show": 1,
                "grid_options": {"columns": 12},
            },
            _heading("Calls now", "mdi:phone-in-talk"),
            _active_calls_card(inventory, active["entity_id"]),
        ]
    for recent in _find(pbx, "recent_calls"):
        cards += [
            _heading("Recent calls", "mdi:phone-log"),
            _recent_calls_card(recent["entity_id"]),
        ]
    events = [e["entity_id"] for e in pbx.entities if e["entity_id"].startswith("event.")]
    if events:
        cards += [
            _heading("Recent activity", "mdi:history"),
            {"type": "logbook", "target": {"entity_id": events}, "hours_to_show": 2},
        ]
    return cards


def _extension_cards(inventory: Inventory) -> list[dict[str, Any]]:
    rows = [
        {
            "entity": status["entity_id"],
            "name": _extension_label(device),
            "secondary_info": "last-changed",
        }
        for device in inventory.of_kind("extension")
        for status in _find(device, "extension_status")
    ]
    if not rows:
        return []
    return [_heading("Extensions", "mdi:deskphone"), {"type": "entities", "entities": rows}]


def _queue_cards(inventory: Inventory) -> list[dict[str, Any]]:
    extensions = {d.key: d for d in inventory.of_kind("extension")}
    cards: list[dict[str, Any]] = []
    for queue in inventory.of_kind("queue"):
        counters = _find(
            queue, "waiting_calls", "completed_calls", "abandoned_calls", "hold_time", "talk_time"
        )
        rows: list[Any] = _rows(inventory, queue, counters)
        members = _find(queue, "member_paused")
        if members:
            rows.append({"type": "section", "label": "Agents: on = paused"})
        for member in members:
            own_name = _short_name(inventory, member, queue)
            match = re.search(r"(\d+)", own_name)
            agent = extensions.get(match.group(1)) if match else None
            rows.append(
                {
                    "entity": member["entity_id"],
                    "name": _extension_label(agent) if agent else own_name,
                }
            )
        if rows:
            cards.append(
                {
                    "type": "entities",
                    "title": queue.name,
                    "show_header_toggle": False,
                    "entities": rows,
                }
            )
    return [_heading("Queues", "mdi:account-multiple-outline"), *cards] if cards else []


def _trunk_cards(inventory: Inventory) -> list[dict[str, Any]]:
    trunks = inventory.of_kind("trunk")
    rows = [
        {"entity": e["entity_id"], "name": trunk.key, "secondary_info": "last-changed"}
        for trunk in trunks
        for e in _find(trunk, "trunk_status")
    ]
    voltages = [
        {"entity": e["entity_id"], "name": trunk.key}
        for trunk in trunks
        for e in _find(trunk, "line_voltage")
    ]
    cards: list[dict[str, Any]] = []
    if rows:
        cards.append({"type": "entities", "entities": rows})
    if voltages:
        cards.append(
            {
                "type": "glance",
                "title": "FXO line voltage",
                "columns": min(len(voltages), 4),
                "entities": voltages,
            }
        )
    return [_heading("Trunks", "mdi:phone-in-talk-outline"), *cards] if cards else []


def _conference_cards(inventory: Inventory) -> list[dict[str, Any]]:
    rows = [
        {"entity": e["entity_id"], "name": room.name}
        for room in inventory.of_kind("conference")
        for e in _find(room, "participants")
    ]
    if not rows:
        return []
    return [
        _heading("Conferences", "mdi:account-group-outline"),
        {"type": "entities", "entities": rows},
    ]


def build_dashboard(
    inventory: Inventory, extra_sections: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A sections dashboard of the PBX in three columns of about equal height.

    The PBX (counters, calls now, recent activity); extensions and conferences; queues
    (with the agents' pause switches) and trunks (with the FXO line voltage).
    """
    columns = [
        [card for pbx in inventory.of_kind("pbx") for card in _overview_cards(inventory, pbx)],
        _extension_cards(inventory) + _conference_cards(inventory),
        _queue_cards(inventory) + _trunk_cards(inventory),
    ]
    sections = [{"type": "grid", "cards": cards} for cards in columns if cards]
    sections += extra_sections or []
    return {
        "title": "Smart PBX",
        "views": [
            {
                "title": "Smart PBX",
                "path": "pbx",
                "icon": "mdi:phone-classic",
                "type": "sections",
                "max_columns": 3,
                "sections": sections,
            }
        ],
    }


def dashboard_entity_ids(dashboard: Any) -> set[str]:
    """Every entity id a dashboard refers to."""
    found: set[str] = set()
    if isinstance(dashboard, dict):
        for key, value in dashboard.items():
            if key == "entity" and isinstance(value, str):
                found.add(value)
            elif key in ("entities", "entity_id") and isinstance(value, list):
                found.update(v for v in value if isinstance(v, str))
                found.update(dashboard_entity_ids(value))
            else:
                found.update(dashboard_entity_ids(value))
    elif isinstance(dashboard, list):
        for item in dashboard:
            found.update(dashboard_entity_ids(item))
    return found


DASHBOARD_HEADER = """\
# Smart PBX example dashboard (YAML mode).
#
# Generated by demo/bootstrap.py from the devices and entities the smartpbx integration
# made for the demo's simulated PBX. To use it in your own Home Assistant, add it as a
# YAML dashboard and replace the entity ids with yours:
#
#   lovelace:
#     dashboards:
#       smart-pbx:
#         mode: yaml
#         filename: smartpbx-dashboard.yaml
#         title: Smart PBX
#         icon: mdi:phone-classic
"""

PLACEHOLDER_DASHBOARD: dict[str, Any] = {
    "title": "Smart PBX",
    "views": [
        {
            "title": "Smart PBX",
            "path": "pbx",
            "cards": [
                {
                    "type": "markdown",
                    "content": "The demo is still setting up the Smart PBX: reload in a moment.",
                }
            ],
        }
    ],
}


class _DashboardDumper(yaml.SafeDumper):  # type: ignore[misc]
    """Writes multi-line strings (the markdown card's template) as readable blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_DashboardDumper.add_representer(str, _represent_str)


def dashboard_yaml(dashboard: Mapping[str, Any]) -> str:
    body: str = yaml.dump(
        dict(dashboard), Dumper=_DashboardDumper, sort_keys=False, allow_unicode=True, width=100
    )
    return DASHBOARD_HEADER + "\n" + body


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds it (keeps mtimes, and HA's cache)."""
    with contextlib.suppress(FileNotFoundError):
        if path.read_text(encoding="utf-8") == text:
            return False
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return True
