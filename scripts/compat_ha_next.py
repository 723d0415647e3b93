"""Smoke test of the integration on the newest Home Assistant release (requirements_ha_next.txt).

pytest-homeassistant-custom-component lags Home Assistant's releases, so scripts/test runs
this after pytest: a real ``hass`` of the newest release in .venv-ha-next (made by
scripts/setup-ha-next), with a fresh configuration, a real Mosquitto on a free loopback
port and the project's simulator. Like a user, it sets the integration up through the
config flow (over REST, with the demo's client in demo/bootstrap.py), then checks that
the entities exist, calls one action (``smartpbx.dial``) and waits for the simulated PBX's
answer as an event (``smartpbx_invite`` with the call's id), reloads the entry, stops Home
Assistant, and fails on any error or traceback logged about the integration.

    .venv-ha-next/bin/python scripts/compat_ha_next.py [--keep]

Exit code 0 when everything passed. Not a pytest module: scripts/test runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from pathlib import Path
import random
import re
import shutil
import socket
import sys
import tempfile
import time
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402  (after the path: demo/ and tests/ are the project's)

from demo import bootstrap  # noqa: E402
from demo.develop import Child, Supervisor  # noqa: E402
from tests.broker import MosquittoBroker  # noqa: E402

DOMAIN = bootstrap.DOMAIN
TOKEN = "compat-token"
SERIAL = "CPT00000000000001"
START_WITHIN = 180.0  # seconds for Home Assistant to start and the entry to load
EVENT_WITHIN = 15.0
_DEVICE_KINDS = ("pbx", "extension", "trunk", "queue", "conference")

CONFIGURATION_YAML = """\
# A minimal Home Assistant for the compatibility stage (scripts/compat_ha_next.py).
homeassistant:
  name: smartpbx compatibility
  unit_system: metric
  time_zone: UTC
  country: DE
  auth_providers:
    - type: homeassistant

api:
config:
onboarding:
websocket_api:

logger:
  default: warning
  logs:
    custom_components.smartpbx: info
    # Media tools Home Assistant always probes for; nothing here has cameras or media.
    haffmpeg: critical
    homeassistant.components.camera.img_util: critical
"""

# A log record's first line, e.g. "2026-11-05 10:00:00.123+00:00 ERROR (MainThread) [logger] text"
# (2026.11 added the UTC offset; older releases had none).
_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.,]\d+(?:[+-]\d\d:?\d\d|Z)? "
    r"(?P<level>[A-Z]+) \((?P<thread>[^)]*)\) \[(?P<logger>[^\]]+)\] "
)
# Logged when the HTTP port is taken; Home Assistant then runs on without its API.
_HTTP_BIND_FAILED = "Failed to create HTTP server at port"
# Logged for every custom integration at start-up: not a problem of ours, but proof that
# the log's format is understood (otherwise no error could be found in it).
_CUSTOM_INTEGRATION_NOTICE = "We found a custom integration smartpbx which has not been tested"


class CompatError(Exception):
    """A check failed; the message says which."""


def _say(message: str) -> None:
    print(f"compat: {message}", flush=True)


def problems_in_log(text: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) that Home Assistant logged about this integration.

    An error is an ERROR or CRITICAL record from our loggers or naming smartpbx, or any
    record whose traceback passes through custom_components/smartpbx. Warnings naming
    smartpbx (deprecations Home Assistant reports for custom integrations) are returned for
    the report; they do not fail the stage.
    """
    errors: list[str] = []
    warnings: list[str] = []
    records: list[list[str]] = []
    for line in text.splitlines():
        if _RECORD.match(line) or not records:
            records.append([line])
        else:
            records[-1].append(line)
    for record in records:
        head = record[0]
        match = _RECORD.match(head)
        if match is None:
            continue
        whole = "\n".join(record)
        ours = match["logger"].startswith("custom_components.smartpbx") or DOMAIN in head.lower()
        traceback_through_us = "custom_components/smartpbx" in whole
        if traceback_through_us or (match["level"] in ("ERROR", "CRITICAL") and ours):
            errors.append(whole)
        elif match["level"] == "WARNING" and ours and _CUSTOM_INTEGRATION_NOTICE not in head:
            warnings.append(whole)
    return errors, warnings


def _prepare_config(config_dir: Path, port: int) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "configuration.yaml").write_text(CONFIGURATION_YAML, encoding="utf-8")
    # A copy, as HACS installs it: only the integration's folder.
    shutil.copytree(
        ROOT / "custom_components" / DOMAIN,
        config_dir / "custom_components" / DOMAIN,
        ignore=shutil.ignore_patterns("__pycache__"),
        dirs_exist_ok=True,
    )
    # The HTTP port, and onboarding without location, analytics and discovery.
    bootstrap.seed_storage(config_dir, listen="127.0.0.1", port=port)


async def _idle_extensions(api: bootstrap.HomeAssistantApi, entry_id: str) -> list[str]:
    """Numbers of extensions whose status entity says idle."""
    inventory = await bootstrap.load_inventory(api, entry_id)
    idle = []
    for device in inventory.of_kind("extension"):
        for entity in device.entities:
            state = inventory.states.get(entity["entity_id"], {}).get("state")
            if entity.get("translation_key") == "extension_status" and state == "idle":
                idle.append(device.key)
    return idle


async def _wait_for(
    events: list[dict[str, Any]], event_type: str, data: dict[str, Any], within: float
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for event in events:
            if event.get("event_type") == event_type and all(
                event.get("data", {}).get(key) == value for key, value in data.items()
            ):
                return event
        await asyncio.sleep(0.1)
    seen = sorted({e.get("event_type", "") for e in events if DOMAIN in e.get("event_type", "")})
    raise CompatError(f"no {event_type} with {data} within {within:.0f} s (saw: {seen})")


async def _exercise(
    api: bootstrap.HomeAssistantApi,
    broker: MosquittoBroker,
    started: float,
    marks: dict[str, float],
) -> None:
    deadline = started + START_WITHIN
    config = await api.wait_until_running(deadline)
    marks["running"] = time.monotonic() - started
    _say(f"Home Assistant {config.get('version')} is running")

    with tempfile.TemporaryDirectory() as scratch:
        entry, _ = await bootstrap.ensure_config_entry(
            api,
            broker_host=broker.host,
            broker_port=broker.port,
            token=TOKEN,
            state_file=Path(scratch) / "entry.json",
            within=max(30.0, deadline - time.monotonic()),
        )
    entry_id = entry["entry_id"]
    _say(f"config flow created {entry.get('title')!r}, state {entry.get('state')}")
    inventory = await bootstrap.wait_for_entities(api, entry_id, within=60)
    marks["entities"] = time.monotonic() - started
    per_domain, unavailable = bootstrap.summarize_entities(inventory)
    kinds = {kind: len(inventory.of_kind(kind)) for kind in _DEVICE_KINDS}
    _say(
        f"devices {kinds}; entities {dict(sorted(per_domain.items()))}; "
        f"unavailable {len(unavailable)}"
    )
    if kinds["pbx"] != 1 or not kinds["extension"]:
        raise CompatError(f"expected one PBX device and extensions, got {kinds}")
    if unavailable:
        raise CompatError(f"unavailable entities: {unavailable[:10]}")

    events: list[dict[str, Any]] = []
    await api.subscribe_events(events.append)
    idle = await _idle_extensions(api, entry_id)
    if len(idle) < 2:
        raise CompatError(f"need two idle extensions to place a call, found {idle}")
    caller, callee = idle[:2]
    answer = await api.post(
        f"/api/services/{DOMAIN}/dial?return_response",
        {"caller": caller, "callee": callee, "config_entry_id": entry_id},
    )
    callid = (answer.get("service_response") or {}).get("callid")
    if not callid:
        raise CompatError(f"smartpbx.dial returned no callid: {answer}")
    invite = await _wait_for(
        events, f"{DOMAIN}_invite", {"callid": callid, "to": callee}, EVENT_WITHIN
    )
    _say(
        f"smartpbx.dial {caller} -> {callee}: callid {callid}; the PBX's invite came back as "
        f"{invite['event_type']} {json.dumps(invite['data'], sort_keys=True)[:160]}"
    )

    # Unloading and setting up again: what a user's reconfigure or restart does.
    await api.post(f"/api/config/config_entries/entry/{entry_id}/reload", {})
    await _wait_loaded(api, entry_id, within=30)
    inventory = await bootstrap.wait_for_entities(api, entry_id, within=60)
    _, unavailable = bootstrap.summarize_entities(inventory)
    if unavailable:
        raise CompatError(f"unavailable entities after a reload: {unavailable[:10]}")
    _say(f"entry reloaded; its {len(inventory.entity_ids)} entities are back")
    marks["checks"] = time.monotonic() - started


async def _wait_loaded(api: bootstrap.HomeAssistantApi, entry_id: str, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        entries = await api.get(f"/api/config/config_entries/entry?domain={DOMAIN}")
        state = next((e.get("state") for e in entries if e["entry_id"] == entry_id), None)
        if state == "loaded":
            return
        if time.monotonic() > deadline:
            raise CompatError(f"the entry did not load again after a reload: {state}")
        await asyncio.sleep(0.5)


def _unused_port() -> int:
    """A loopback port for Home Assistant, outside the range of outgoing connections.

    Linux gives outgoing connections (the simulator's, other programs') ports from 32768 to
    60999: a port from there that is free now can be taken before Home Assistant binds it.
    """
    for port in random.sample(range(20000, 32000), 200):
        with socket.socket() as probe, contextlib.suppress(OSError):
            probe.bind(("127.0.0.1", port))
            return port
    raise CompatError("no free loopback port between 20000 and 32000")


def _port_taken(home_assistant: Child) -> bool:
    with contextlib.suppress(FileNotFoundError):
        log = home_assistant.log_path.read_text(encoding="utf-8", errors="replace")
        return _HTTP_BIND_FAILED in log
    return False


async def _start_home_assistant(
    supervisor: Supervisor, session: aiohttp.ClientSession, config_dir: Path, started: float
) -> bootstrap.HomeAssistantApi:
    """Start ``hass`` on a free port and wait until it serves HTTP; a taken port is retried."""
    for _attempt in range(3):
        port = _unused_port()
        _prepare_config(config_dir, port)
        home_assistant = await supervisor.start(
            "homeassistant",
            [
                sys.executable,
                # -P: not the project's folder (the working directory) first on the path,
                # so that Home Assistant loads the copy in its config, as installed.
                "-P",
                "-m",
                "homeassistant",
                "-c",
                str(config_dir),
                "--skip-pip",
                "--log-no-color",
            ],
            env={"PYTHONUNBUFFERED": "1"},
            stop_timeout=30,
        )

        def still_starting(child: Child = home_assistant) -> bool:
            return child.running and not _port_taken(child)

        api = bootstrap.HomeAssistantApi(session, f"http://127.0.0.1:{port}")
        try:
            await api.wait_until_serving(started + START_WITHIN, still_starting)
        except bootstrap.BootstrapError:
            if not _port_taken(home_assistant):
                raise
            _say(f"port {port} was taken before Home Assistant bound it: another port")
            await home_assistant.stop()
            supervisor.children.remove(home_assistant)
            continue
        return api
    raise CompatError("Home Assistant found no free port in three attempts")


async def run(keep: bool) -> int:
    work = Path(tempfile.mkdtemp(prefix="smartpbx-compat-"))
    config_dir, log_dir = work / "config", work / "logs"
    log_dir.mkdir()
    marks: dict[str, float] = {}
    failure: str | None = None
    supervisor = Supervisor(log_dir, echo_logs=False)
    ha_log = log_dir / "homeassistant.log"
    with MosquittoBroker() as broker:
        try:
            await supervisor.start(
                "simulator",
                [
                    sys.executable,
                    "-m",
                    "smartpbx_sim",
                    "--port",
                    str(broker.port),
                    "--token",
                    TOKEN,
                    "--serial",
                    SERIAL,
                ],
            )
            started = time.monotonic()
            async with aiohttp.ClientSession() as session:
                api = await _start_home_assistant(supervisor, session, config_dir, started)
                marks["serving"] = time.monotonic() - started
                try:
                    await api.onboard_or_log_in()
                    await _exercise(api, broker, started, marks)
                finally:
                    await api.close()
        except (bootstrap.BootstrapError, CompatError, aiohttp.ClientError, TimeoutError) as err:
            failure = str(err) or type(err).__name__
        finally:
            await supervisor.stop_all()

    text = ha_log.read_text(encoding="utf-8", errors="replace") if ha_log.exists() else ""
    errors, warnings = problems_in_log(text)
    if _CUSTOM_INTEGRATION_NOTICE not in text or not any(map(_RECORD.match, text.splitlines())):
        failure = failure or "Home Assistant's log does not have the expected format (or is empty)"
    for warning in warnings:
        _say(f"warning logged about the integration:\n{warning}")
    if errors:
        failure = failure or f"{len(errors)} errors logged about the integration"
        for error in errors:
            _say(f"ERROR logged about the integration:\n{error}")
    # Seconds since Home Assistant was started.
    timings = ", ".join(f"{what} after {seconds:.1f} s" for what, seconds in marks.items())
    _say(f"timings: {timings or 'none'}")
    if failure:
        _say(f"FAILED: {failure}")
        for child in supervisor.children:
            _say(f"last lines of {child.name}'s log:\n{child.log_tail(40)}")
        _say(f"logs kept in {log_dir}")
        return 1
    _say("passed")
    if keep:
        _say(f"logs kept in {log_dir}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the logs and configuration")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args.keep))
    return 130


if __name__ == "__main__":
    sys.exit(main())
