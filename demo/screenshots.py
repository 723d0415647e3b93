"""Screenshots of the demo's Home Assistant, taken with headless Chromium.

Started by ``scripts/screenshots``. Uses a running demo on ``--port`` when there is one,
or starts the demo itself (and stops it afterwards), lets live traffic run for a while,
then drives Chromium over the DevTools protocol: open a page, wait until Home Assistant
has rendered it with data, capture it. Plain ``chromium --screenshot`` cannot do this: it
captures before the frontend has connected, and ``--virtual-time-budget`` fast-forwards
the frontend's connection timeouts so it never connects.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import Sequence
import contextlib
from dataclasses import dataclass
import itertools
import json
import os
from pathlib import Path
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

import aiohttp

from demo import bootstrap, develop

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)

# Finds elements through every shadow root: Home Assistant's UI is web components.
_DEEP_QUERY = """
(() => {
  const found = (selector) => {
    const out = [];
    const walk = (root) => {
      root.querySelectorAll(selector).forEach((el) => out.push(el));
      root.querySelectorAll('*').forEach((el) => { if (el.shadowRoot) walk(el.shadowRoot); });
    };
    walk(document);
    return out;
  };
  return found;
})()
"""


@dataclass(frozen=True)
class Shot:
    """One picture: a page of Home Assistant, and what must be on it before capturing."""

    file: str
    path: str
    ready_selectors: tuple[str, ...]
    height: int | None = None  # None: the whole page, however long


def _say(message: str) -> None:
    print(f"screenshots: {message}", flush=True)


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    raise bootstrap.BootstrapError(
        "Chromium is not installed: apt-get install -y chromium (scripts/screenshots does "
        "this by itself when it runs as root or with sudo)"
    )


class DevTools:
    """The few Chrome DevTools Protocol calls the screenshots need, over one page."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        await self._ws.send_json({"id": message_id, "method": method, "params": params})
        while True:
            message = await self._ws.receive_json(timeout=60)
            if message.get("id") != message_id:
                continue  # an event we did not ask for
            if "error" in message:
                raise bootstrap.BootstrapError(f"DevTools {method}: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise bootstrap.BootstrapError(f"page script failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")


async def _start_chromium(
    chromium: str, profile: Path, width: int, height: int
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        process_group=0,
    )


async def _devtools_url(session: aiohttp.ClientSession, profile: Path, deadline: float) -> str:
    """The page's DevTools WebSocket, once Chromium has written its port down."""
    port_file = profile / "DevToolsActivePort"
    while True:
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError, aiohttp.ClientError):
            port = int(port_file.read_text(encoding="utf-8").splitlines()[0])
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                for target in await response.json():
                    if target.get("type") == "page":
                        return str(target["webSocketDebuggerUrl"])
        if time.monotonic() > deadline:
            raise bootstrap.BootstrapError("Chromium did not open its DevTools port")
        await asyncio.sleep(0.2)


async def _wait_rendered(tools: DevTools, shot: Shot, deadline: float) -> None:
    """Wait until every selector matches something, and no spinner is left."""
    checks = json.dumps(list(shot.ready_selectors))
    expression = f"""
    (() => {{
      const found = {_DEEP_QUERY};
      const ready = {checks}.every((selector) => found(selector).length > 0);
      const spinning = found('ha-spinner, ha-circular-progress').filter(
        (el) => el.offsetParent !== null).length;
      return {{ready, spinning, url: location.pathname}};
    }})()
    """
    while True:
        state = await tools.evaluate(expression)
        if state and state["ready"] and not state["spinning"]:
            return
        if time.monotonic() > deadline:
            raise bootstrap.BootstrapError(f"{shot.path} did not render in time: {state}")
        await asyncio.sleep(0.5)


async def _capture(tools: DevTools, shot: Shot, width: int, out_dir: Path) -> Path:
    height = shot.height
    if height is None:
        # Home Assistant scrolls the page itself; measure what the view really needs.
        measured = await tools.evaluate(
            f"""
            (() => {{
              const found = {_DEEP_QUERY};
              const bottoms = found('hui-card')
                .map((el) => el.getBoundingClientRect())
                .filter((box) => box.height > 0)
                .map((box) => box.bottom + window.scrollY);
              return Math.ceil(Math.max(0, ...bottoms) + 32);
            }})()
            """
        )
        height = max(int(measured or 0), 600)
    await tools.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    await asyncio.sleep(1.5)  # let the cards lay themselves out at the new size
    picture = await tools.call("Page.captureScreenshot", format="png")
    target = out_dir / shot.file
    target.write_bytes(base64.b64decode(picture["data"]))
    return target


async def take_screenshots(
    session: aiohttp.ClientSession,
    base_url: str,
    shots: Sequence[Shot],
    out_dir: Path,
    width: int,
) -> list[Path]:
    chromium = find_chromium()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="smartpbx-chromium-") as profile_dir:
        profile = Path(profile_dir)
        browser = await _start_chromium(chromium, profile, width, 1000)
        try:
            deadline = time.monotonic() + 60
            url = await _devtools_url(session, profile, deadline)
            async with session.ws_connect(url, max_msg_size=0) as ws:
                tools = DevTools(ws)
                await tools.call("Page.enable")
                taken: list[Path] = []
                for shot in shots:
                    # Tall enough for the whole page from the start: lists render only
                    # the rows in view, and may not redraw when the view grows later.
                    await tools.call(
                        "Emulation.setDeviceMetricsOverride",
                        width=width,
                        height=shot.height or 3200,
                        deviceScaleFactor=1,
                        mobile=False,
                    )
                    await tools.call("Page.navigate", url=base_url + shot.path)
                    # The first page also logs in: trusted network, no password (demo only).
                    await _wait_rendered(tools, shot, time.monotonic() + 90)
                    await asyncio.sleep(3)  # history graph data, fonts, icons
                    taken.append(await _capture(tools, shot, width, out_dir))
                    _say(f"wrote {taken[-1].relative_to(ROOT)}")
                return taken
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(browser.pid, signal.SIGKILL)
            await browser.wait()


async def _pbx_device_id(api: bootstrap.HomeAssistantApi) -> str | None:
    devices = await api.ws_command("config/device_registry/list")
    for device in devices:
        for domain, value in device.get("identifiers", []):
            if domain == bootstrap.DOMAIN and value == develop.PBX_SERIAL:
                return str(device["id"])
    return None


async def _run(args: argparse.Namespace) -> int:
    base_url = f"http://localhost:{args.port}"
    out_dir = Path(args.out).resolve()
    async with aiohttp.ClientSession() as session:
        demo: develop.Demo | None = None
        api = bootstrap.HomeAssistantApi(session, f"http://127.0.0.1:{args.port}")
        try:
            running = False
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(
                    f"{api.base_url}/auth/providers", timeout=aiohttp.ClientTimeout(total=3)
                ) as response:
                    running = response.status == 200
            if running:
                _say(f"using the demo running on {base_url}")
                await api.onboard_or_log_in()
            else:
                _say("no demo running: starting one (scripts/develop)")
                demo = develop.Demo(
                    develop.build_parser().parse_args(
                        ["--port", str(args.port), "--traffic", str(args.traffic)]
                    )
                )
                await demo.start(session)
                assert demo.api is not None
                api = demo.api
                _say(f"letting calls come and go for {args.warmup:.0f} s")
                await asyncio.sleep(args.warmup)
            shots = [
                Shot(
                    "dashboard.png",
                    f"/{bootstrap.DASHBOARD_URL_PATH}/pbx",
                    ("hui-tile-card", "hui-markdown-card", "hui-entities-card"),
                )
            ]
            if (device_id := await _pbx_device_id(api)) is not None:
                shots.append(
                    Shot(
                        "device.png",
                        f"/config/devices/device/{device_id}",
                        ("ha-device-entities-card",),
                        height=1000,
                    )
                )
            await take_screenshots(session, base_url, shots, out_dir, args.width)
        except bootstrap.BootstrapError as err:
            _say(f"error: {err}")
            return 1
        finally:
            await api.close()
            if demo is not None:
                await asyncio.shield(demo.supervisor.stop_all())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/screenshots",
        description="Screenshots of the demo's dashboard and PBX device page for the docs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=8123, help="the demo's Home Assistant port")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"), help="folder for PNGs")
    parser.add_argument("--width", type=int, default=1400, help="browser width in pixels")
    parser.add_argument(
        "--warmup", type=float, default=90, help="seconds of live traffic before capturing"
    )
    parser.add_argument("--traffic", type=float, default=6.0, help="simulated calls per minute")
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
