"""Run the Smart PBX demo: an MQTT broker, the PBX simulator and Home Assistant.

Started by ``scripts/develop``, which prepares the venv first. Everything runs on this
machine's loopback: Mosquitto (or an embedded amqtt broker where Mosquitto cannot be
installed) on a port of its own, ``python -m smartpbx_sim`` with live traffic, and
``hass`` with the integration configured through its real config flow. Ctrl-C stops all
of it; children also die with this process if it is killed outright.

DEMO ONLY: Home Assistant here logs anyone on 127.0.0.1 in without a password.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Sequence
import contextlib
import ctypes
import ctypes.util
from dataclasses import dataclass
import json
import os
from pathlib import Path
import shutil
import signal
import socket
import sys
import time
from typing import IO, Any

import aiohttp

from demo import bootstrap
from smartpbx_sim.names import EXTERNAL_CALLER_NAMES

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = Path(os.environ.get("SMARTPBX_DEMO_DIR", ROOT / ".demo"))
TEMPLATES = ROOT / "demo"
PBX_TOKEN = "demo-token"  # the simulator's documented demo token
PBX_SERIAL = "XR18132110000787"

AMQTT = "amqtt==0.11.3"  # the embedded broker, only where Mosquitto cannot be installed
_PR_SET_PDEATHSIG = 1
# Listening on these, Home Assistant is reached on the loopback address.
_ALL_ADDRESSES = ("127.0.0.1", "0.0.0.0", "::")


def _say(message: str) -> None:
    print(f"develop: {message}", flush=True)


# --------------------------------------------------------------------------------------
# Child processes


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the demo's process dies, however it dies."""
    libc_name = ctypes.util.find_library("c")
    if sys.platform != "linux" or libc_name is None:
        return  # prctl is Linux's; elsewhere Ctrl-C still stops everything
    libc = ctypes.CDLL(libc_name, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class Child:
    """A process the demo started, in a process group of its own."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    stop_timeout: float

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def signal_group(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    async def stop(self) -> None:
        if self.running:
            self.signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), self.stop_timeout)
            except TimeoutError:
                _say(f"{self.name} did not stop in {self.stop_timeout:.0f} s: killing it")
        # Anything the child left in its group goes too.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await self.process.wait()

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    """Starts children, notices when one dies, and stops them all in reverse order."""

    def __init__(self, log_dir: Path, echo_logs: bool) -> None:
        self._log_dir = log_dir
        self._echo_logs = echo_logs
        self.children: list[Child] = []

    async def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stop_timeout: float = 10.0,
    ) -> Child:
        log_path = self._log_dir / f"{name}.log"
        log_file: IO[bytes] | int = sys.stdout.fileno() if self._echo_logs else log_path.open("wb")
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                # A group of its own: Ctrl-C in the terminal reaches only this script,
                # which then stops the children in order and can kill each whole group.
                process_group=0,
                preexec_fn=_die_with_parent,
            )
        finally:
            if not isinstance(log_file, int):
                log_file.close()
        child = Child(name, process, log_path, stop_timeout)
        self.children.append(child)
        return child

    def first_exited(self) -> Child | None:
        return next((child for child in self.children if not child.running), None)

    async def wait_for_exit(self) -> Child:
        waits = {asyncio.ensure_future(c.process.wait()): c for c in self.children}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for future in pending:
            future.cancel()
        return waits[next(iter(done))]

    async def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.running:
                _say(f"stopping {child.name}")
            await child.stop()

    def kill_all(self) -> None:
        for child in self.children:
            child.signal_group(signal.SIGKILL)


# --------------------------------------------------------------------------------------
# Ports, broker


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


async def _wait_for_port(host: str, port: int, child: Child, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection(host, port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        if not child.running:
            raise bootstrap.BootstrapError(f"{child.name} exited:\n{child.log_tail()}")
        if time.monotonic() > deadline:
            raise bootstrap.BootstrapError(f"{child.name} did not listen on {host}:{port}")
        await asyncio.sleep(0.1)


def _find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found is None and os.access("/usr/sbin/mosquitto", os.X_OK):
        found = "/usr/sbin/mosquitto"
    return found


def _mosquitto_argv(mosquitto: str, run_dir: Path, port: int) -> list[str]:
    config = run_dir / "mosquitto.conf"
    # Started as root, Mosquitto would switch to its own user, and a process that changes
    # its user loses the "die with the demo" signal: it stays root instead, on loopback.
    stay_root = "user root\n" if os.geteuid() == 0 else ""
    config.write_text(
        "# The demo's broker: loopback only, anonymous, nothing persisted. DEMO ONLY.\n"
        f"{stay_root}"
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "log_dest stdout\n"
        "log_type error\nlog_type warning\nlog_type notice\n",
        encoding="utf-8",
    )
    return [mosquitto, "-c", str(config)]


def _amqtt_argv(run_dir: Path, port: int) -> list[str]:
    """An embedded Python broker, from a venv of its own (its pins differ from HA's)."""
    venv = DEMO_DIR / "amqtt-venv"
    amqtt = venv / "bin" / "amqtt"
    if not amqtt.exists():
        _say("installing the embedded amqtt broker into .demo/amqtt-venv (once)")
        import subprocess  # only on this rare path

        # uv (installed by scripts/setup) makes the venv: it needs no ensurepip, which
        # the Python that scripts/setup provisions lacks.
        uv = [sys.executable, "-m", "uv"]
        shutil.rmtree(venv, ignore_errors=True)  # what a failed attempt left
        subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        subprocess.run(
            [*uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), AMQTT],
            check=True,
        )
    config = run_dir / "amqtt.yaml"
    config.write_text(
        "# The demo's broker: loopback only, anonymous. DEMO ONLY.\n"
        "listeners:\n"
        "  default:\n"
        "    type: tcp\n"
        f"    bind: 127.0.0.1:{port}\n"
        "plugins:\n"
        "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
        "    allow_anonymous: true\n",
        encoding="utf-8",
    )
    return [str(amqtt), "-c", str(config)]


async def _probe_pbx(port: int, token: str, within: float) -> dict[str, Any]:
    """Ask the simulated PBX for its device info over the broker, as the integration will."""
    import aiomqtt  # keeps --help fast

    base = f"device/{token}/api/v1.0"
    request_id = f"demo-{os.getpid()}-{time.monotonic_ns()}"
    deadline = time.monotonic() + within
    while True:
        try:
            async with aiomqtt.Client("127.0.0.1", port, identifier=request_id) as client:
                await client.subscribe(f"{base}/response", qos=1)
                payload = json.dumps({"cmd": "deviceInfo", "request_id": request_id})
                await client.publish(f"{base}/command/system", payload, qos=1)
                async with asyncio.timeout(3):
                    async for message in client.messages:
                        reply = json.loads(bytes(message.payload))
                        if reply.get("request_id") == request_id:
                            return dict(reply)
        except (aiomqtt.MqttError, TimeoutError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise bootstrap.BootstrapError("The PBX simulator did not answer on the demo broker")
        await asyncio.sleep(0.5)


# --------------------------------------------------------------------------------------
# Home Assistant's config folder


def _prepare_config(config_dir: Path, *, listen: str, port: int) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    for name in ("configuration.yaml", "automations.yaml"):
        bootstrap.write_if_changed(
            config_dir / name, (TEMPLATES / name).read_text(encoding="utf-8")
        )
    for name in ("scripts.yaml", "scenes.yaml"):
        (config_dir / name).touch()
    links = {
        config_dir / "custom_components" / "smartpbx": ROOT / "custom_components" / "smartpbx",
        config_dir / "blueprints" / "automation" / "smartpbx": ROOT
        / "blueprints"
        / "automation"
        / "smartpbx",
    }
    for link, target in links.items():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() and link.resolve() == target:
            continue
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.is_dir():
            shutil.rmtree(link)
        link.symlink_to(target, target_is_directory=True)
    dashboard = config_dir / bootstrap.DASHBOARD_FILENAME
    if not dashboard.exists():
        dashboard.write_text(
            bootstrap.dashboard_yaml(bootstrap.PLACEHOLDER_DASHBOARD), encoding="utf-8"
        )
    bootstrap.seed_storage(config_dir, listen=listen, port=port)


# --------------------------------------------------------------------------------------
# The demo


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        if args.traffic is None:
            # --check waits for calls to come through: make them come sooner.
            args.traffic = 20.0 if args.check else 6.0
        self.args = args
        self.config_dir = DEMO_DIR / "config"
        self.log_dir = DEMO_DIR / "logs"
        self.run_dir = DEMO_DIR / "run"
        self.supervisor = Supervisor(self.log_dir, echo_logs=args.logs)
        self.started_at = time.monotonic()
        self.timings: dict[str, float] = {}
        self.api: bootstrap.HomeAssistantApi | None = None
        self.entry: dict[str, Any] = {}
        self.inventory: bootstrap.Inventory | None = None
        self.dashboard: dict[str, Any] = {}
        self.ha_child: Child | None = None

    @property
    def url(self) -> str:
        host = "localhost" if self.args.listen in _ALL_ADDRESSES else self.args.listen
        return f"http://{host}:{self.args.port}"

    def _mark(self, what: str) -> None:
        self.timings[what] = time.monotonic() - self.started_at

    async def start(self, session: aiohttp.ClientSession) -> None:
        args = self.args
        if args.reset and DEMO_DIR.exists():
            _say(f"--reset: removing {DEMO_DIR / 'config'}")
            shutil.rmtree(DEMO_DIR / "config", ignore_errors=True)
            (DEMO_DIR / "entry.json").unlink(missing_ok=True)
        for folder in (self.config_dir, self.log_dir, self.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for host, port, what, flag in (
            ("127.0.0.1", args.broker_port, "the demo broker", "--broker-port"),
            (args.listen, args.port, "Home Assistant", "--port"),
        ):
            if not _port_is_free(host, port):
                raise bootstrap.BootstrapError(
                    f"Port {port} ({what}) is in use: is a demo or another Home Assistant "
                    f"already running? Stop it, or pick another port with {flag}."
                )

        mosquitto = None if args.broker == "amqtt" else _find_mosquitto()
        if mosquitto is None and args.broker != "amqtt":
            _say("Mosquitto is not installed: using the embedded amqtt broker instead")
        if mosquitto is not None:
            broker_argv = _mosquitto_argv(mosquitto, self.run_dir, args.broker_port)
        else:
            broker_argv = _amqtt_argv(self.run_dir, args.broker_port)
        broker = await self.supervisor.start("broker", broker_argv, stop_timeout=5)
        await _wait_for_port("127.0.0.1", args.broker_port, broker, within=30)
        kind = "Mosquitto" if mosquitto else "amqtt"
        _say(f"broker: {kind} on 127.0.0.1:{args.broker_port}")

        simulator = await self.supervisor.start(
            "simulator",
            [
                sys.executable,
                "-m",
                "smartpbx_sim",
                "--host",
                "127.0.0.1",
                "--port",
                str(args.broker_port),
                "--token",
                PBX_TOKEN,
                "--serial",
                PBX_SERIAL,
                "--traffic",
                str(args.traffic),
                # What real devices do (FIELD.md): field commands, callstatus, status topic.
                "--profile",
                "field",
            ],
            stop_timeout=10,
        )
        info = await _probe_pbx(args.broker_port, PBX_TOKEN, within=30)
        if not simulator.running:
            raise bootstrap.BootstrapError(f"The simulator exited:\n{simulator.log_tail()}")
        device = info.get("deviceinfo") or {}
        _say(
            f"simulator: PBX {device.get('devicename', '?')} serial {device.get('sn', '?')} "
            f"(field firmware) answers on token {PBX_TOKEN!r}; {args.traffic:g} calls/min"
        )

        _prepare_config(self.config_dir, listen=args.listen, port=args.port)
        self.ha_child = await self.supervisor.start(
            "homeassistant",
            [sys.executable, "-m", "homeassistant", "-c", str(self.config_dir), "--skip-pip"],
            env={"PYTHONUNBUFFERED": "1"},
            stop_timeout=30,
        )
        _say(f"Home Assistant starting (log: {self.log_dir / 'homeassistant.log'})")
        ha = self.ha_child
        deadline = time.monotonic() + args.timeout
        api_host = "127.0.0.1" if args.listen in _ALL_ADDRESSES else args.listen
        api = bootstrap.HomeAssistantApi(session, f"http://{api_host}:{args.port}")
        self.api = api
        await api.wait_until_serving(deadline, lambda: ha.running)
        self._mark("http")
        if await api.onboard_or_log_in():
            _say(f"onboarding: created the demo user {bootstrap.DEMO_USERNAME!r}")
        config = await api.wait_until_running(deadline)
        self._mark("running")
        _say(f"Home Assistant {config.get('version')} is running")

        self.entry, created = await bootstrap.ensure_config_entry(
            api,
            broker_host="127.0.0.1",
            broker_port=args.broker_port,
            token=PBX_TOKEN,
            state_file=DEMO_DIR / "entry.json",
            within=max(10.0, deadline - time.monotonic()),
        )
        how = "created through the config flow" if created else "already configured"
        _say(f"smartpbx entry {self.entry.get('title')!r}: {how}, loaded")
        phonebook = "\n".join(f"{number} = {n}" for number, n in EXTERNAL_CALLER_NAMES.items())
        if await bootstrap.ensure_phonebook(api, self.entry["entry_id"], phonebook):
            _say("phonebook of the simulator's outside callers set in the entry's options")
        self.inventory = await bootstrap.wait_for_entities(
            api, self.entry["entry_id"], within=max(10.0, deadline - time.monotonic())
        )
        self._mark("entities")
        self.dashboard = self._build_dashboard(self.inventory)
        text = bootstrap.dashboard_yaml(self.dashboard)
        bootstrap.write_if_changed(self.config_dir / bootstrap.DASHBOARD_FILENAME, text)
        example = TEMPLATES / "dashboard.yaml"
        if args.write_example:
            if bootstrap.write_if_changed(example, text):
                _say(f"wrote {example.relative_to(ROOT)}")
        elif not example.exists() or example.read_text(encoding="utf-8") != text:
            _say(
                f"note: {example.relative_to(ROOT)} differs from the dashboard made for "
                "these entities; refresh it with: scripts/develop --check --write-example"
            )
        self._mark("ready")

    @staticmethod
    def _build_dashboard(inventory: bootstrap.Inventory) -> dict[str, Any]:
        """The PBX dashboard, plus a section for the demo's own automations and helpers."""
        demo_entities = sorted(
            entity_id
            for entity_id in inventory.states
            if entity_id.startswith("automation.") or entity_id.split(".")[1].startswith("demo_")
        )
        helpers = [e for e in demo_entities if not e.startswith("automation.")]
        automations = [e for e in demo_entities if e.startswith("automation.")]
        extra = [
            {
                "type": "grid",
                "cards": [
                    {
                        "type": "heading",
                        "heading": "Demo automations (blueprints)",
                        "icon": "mdi:robot-outline",
                    },
                    {"type": "entities", "entities": helpers + automations},
                ],
            }
        ]
        return bootstrap.build_dashboard(inventory, extra_sections=extra)

    def describe(self) -> list[str]:
        assert self.inventory is not None
        kinds = Counter(device.kind for device in self.inventory.devices)
        per_domain, unavailable = bootstrap.summarize_entities(self.inventory)
        names = {
            "pbx": "PBX",
            "extension": "extensions",
            "trunk": "trunks",
            "queue": "queues",
            "conference": "conferences",
        }
        lines = [
            f"devices: {', '.join(f'{kinds[k]} {names[k]}' for k in names if kinds[k])}",
            "entities: "
            + f"{sum(per_domain.values())} ("
            + ", ".join(f"{domain} {count}" for domain, count in sorted(per_domain.items()))
            + f"), unavailable: {len(unavailable)}",
        ]
        if unavailable:
            lines.append(f"  unavailable: {', '.join(unavailable[:10])}")
        return lines

    async def check(self) -> bool:
        """Watch live traffic for a while and verify the dashboard; print a summary."""
        api = self.api
        assert api is not None
        assert self.inventory is not None
        ok = True
        ours = set(self.inventory.entity_ids)
        events: Counter[str] = Counter()
        changed: set[str] = set()

        def on_event(event: dict[str, Any]) -> None:
            kind = event.get("event_type", "")
            if kind.startswith(bootstrap.DOMAIN + "_"):
                events[kind] += 1
            elif kind == "state_changed" and event["data"].get("entity_id") in ours:
                changed.add(event["data"]["entity_id"])

        await api.subscribe_events(on_event)
        started = time.monotonic()
        # Long enough for one poll of every coordinator (every 30 s), so trouble
        # that shows only on an update is in the log by the end.
        at_least = min(self.args.watch, 40.0)
        while (elapsed := time.monotonic() - started) < self.args.watch:
            if (
                elapsed >= at_least
                and events[f"{bootstrap.DOMAIN}_invite"]
                and events[f"{bootstrap.DOMAIN}_cdr"]
            ):
                break
            await asyncio.sleep(0.5)

        lines = [
            f"Home Assistant: {self.url} (serving after {self.timings['http']:.1f} s, running "
            f"after {self.timings['running']:.1f} s, PBX entities after "
            f"{self.timings['entities']:.1f} s)",
            f"config entry: {self.entry.get('title')!r} ({self.entry.get('state')})",
            *self.describe(),
        ]
        seen = ", ".join(f"{kind} x{count}" for kind, count in sorted(events.items()))
        lines.append(
            f"live traffic: {seen or 'no smartpbx events'}; {len(changed)} entities changed state"
        )
        if not events[f"{bootstrap.DOMAIN}_invite"]:
            ok = False
            lines.append("  FAIL: no incoming call (smartpbx_invite) reached Home Assistant")

        # What the frontend asks for first; one failing here leaves the UI at "Loading...".
        for command in ("get_config", "get_services", "get_panels", "frontend/get_themes"):
            try:
                await api.ws_command(command)
            except bootstrap.BootstrapError as err:
                ok = False
                lines.append(f"  FAIL: the frontend's {command} fails: {err}")
        lovelace = await api.ws_command(
            "lovelace/config", url_path=bootstrap.DASHBOARD_URL_PATH, force=True
        )
        referenced = bootstrap.dashboard_entity_ids(lovelace)
        states = {state["entity_id"] for state in await api.get("/api/states")}
        missing = sorted(referenced - states)
        sections = sum(len(view.get("sections", [])) for view in lovelace.get("views", []))
        lines.append(
            f"dashboard /{bootstrap.DASHBOARD_URL_PATH}: {sections} sections, "
            f"{len(referenced)} entities, {len(missing)} missing"
        )
        if missing or not referenced:
            ok = False
            lines.append(f"  FAIL: entities missing from the dashboard: {missing[:10]}")

        automations = [
            state
            for state in await api.get("/api/states")
            if state["entity_id"].startswith("automation.")
        ]
        off = [a["entity_id"] for a in automations if a["state"] != "on"]
        lines.append(f"blueprint automations: {len(automations)} ({len(off)} not on)")
        if off or not automations:
            ok = False
            lines.append(f"  FAIL: automations not on: {off}")

        assert self.ha_child is not None
        if self.args.logs:
            lines.append("Home Assistant log: not checked (--logs sends it to the terminal)")
        else:
            log_text = self.ha_child.log_path.read_text(encoding="utf-8", errors="replace")
            errors = [line for line in log_text.splitlines() if " ERROR (" in line]
            about_us = [line for line in errors if "smartpbx" in line.lower()]
            lines.append(
                f"Home Assistant log: {len(errors)} errors, {len(about_us)} about smartpbx"
            )
            if about_us:
                ok = False
                lines += [f"  FAIL: {line[:300]}" for line in about_us[:5]]

        _say("check " + ("passed" if ok else "FAILED"))
        for line in lines:
            print(f"  {line}", flush=True)
        return ok

    async def refresh_dashboard_when_entities_change(self) -> None:
        """Keep the generated dashboard in step if devices come or go while it runs."""
        api = self.api
        assert api is not None
        while True:
            await asyncio.sleep(30)
            with contextlib.suppress(bootstrap.BootstrapError, aiohttp.ClientError):
                inventory = await bootstrap.load_inventory(api, self.entry["entry_id"])
                if inventory.entity_ids and set(inventory.entity_ids) != set(
                    self.inventory.entity_ids if self.inventory else []
                ):
                    self.inventory = inventory
                    text = bootstrap.dashboard_yaml(self._build_dashboard(inventory))
                    bootstrap.write_if_changed(self.config_dir / bootstrap.DASHBOARD_FILENAME, text)


async def _run(args: argparse.Namespace) -> int:
    demo = Demo(args)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    interrupted = False
    stopping = False

    def interrupt() -> None:
        nonlocal interrupted
        if interrupted or stopping:  # Ctrl-C while stopping: no more waiting
            demo.supervisor.kill_all()
            os._exit(130)
        interrupted = True
        main_task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, interrupt)

    code = 0
    try:
        async with aiohttp.ClientSession() as session:
            try:
                await demo.start(session)
                if args.check:
                    code = 0 if await demo.check() else 1
                else:
                    for line in demo.describe():
                        _say(line)
                    _say(
                        f"ready after {demo.timings['ready']:.1f} s: open {demo.url}/"
                        f"{bootstrap.DASHBOARD_URL_PATH}/pbx  (no login needed: demo only)"
                    )
                    _say(f"logs in {demo.log_dir}; Ctrl-C stops everything")
                    refresher = asyncio.create_task(demo.refresh_dashboard_when_entities_change())
                    try:
                        exited = await demo.supervisor.wait_for_exit()
                    finally:
                        refresher.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await refresher
                    _say(f"{exited.name} exited unexpectedly:\n{exited.log_tail()}")
                    code = 1
            finally:
                if demo.api is not None:
                    await demo.api.close()
    except asyncio.CancelledError:
        if not interrupted:
            raise
        print(flush=True)
        _say("interrupted")
        code = 130
    except bootstrap.BootstrapError as err:
        _say(f"error: {err}")
        if (child := demo.supervisor.first_exited()) is not None:
            _say(f"last lines of {child.log_path}:\n{child.log_tail()}")
        elif demo.ha_child is not None:
            _say(f"see {demo.ha_child.log_path}")
        code = 1
    finally:
        # From here a Ctrl-C (or SIGTERM) no longer cancels: it kills everything at once.
        stopping = True
        await demo.supervisor.stop_all()
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/develop",
        description=(
            "Run the Smart PBX demo: an MQTT broker, the PBX simulator with live calls, "
            "and Home Assistant with the integration and a dashboard. DEMO ONLY: Home "
            "Assistant logs in anyone on this machine without a password."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="start everything, verify entities, live traffic and dashboard, then stop",
    )
    parser.add_argument("--port", type=int, default=8123, help="Home Assistant's port")
    parser.add_argument(
        "--listen",
        default="127.0.0.1",
        help="address Home Assistant listens on (password login from other machines)",
    )
    parser.add_argument("--broker-port", type=int, default=18830, help="the demo broker's port")
    parser.add_argument(
        "--broker",
        choices=("auto", "amqtt"),
        default="auto",
        help="auto: Mosquitto when installed, else the embedded amqtt broker",
    )
    parser.add_argument(
        "--traffic",
        type=float,
        default=None,
        help="simulated calls per minute, 0 for none (default: 6, with --check 20)",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds to become ready")
    parser.add_argument(
        "--watch", type=float, default=90, help="--check: seconds to wait for live calls"
    )
    parser.add_argument(
        "--reset", action="store_true", help="forget the demo's Home Assistant config first"
    )
    parser.add_argument(
        "--logs", action="store_true", help="show the children's output here, not in .demo/logs"
    )
    parser.add_argument(
        "--write-example",
        action="store_true",
        help="also write the generated dashboard to demo/dashboard.yaml",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(_run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
