"""Command line: ``python -m smartpbx_sim --host BROKER --token TOKEN``.

Runs a simulated Smart PBX against an MQTT broker until Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys

from .config import FirmwareProfile, PbxConfig, Quirks
from .pbx import SimulatedPbx
from .runner import SimulatorRunner

_LOGGER = logging.getLogger("smartpbx_sim")
_QUIRKS = [f.name for f in dataclasses.fields(Quirks)]


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    defaults = PbxConfig()
    parser = argparse.ArgumentParser(
        prog="python -m smartpbx_sim",
        description="Simulate a Smart PBX on an MQTT broker (development tool).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    broker = parser.add_argument_group("broker")
    broker.add_argument("--host", default="127.0.0.1", help="MQTT broker host")
    broker.add_argument("--port", type=int, default=1883, help="MQTT broker port")
    broker.add_argument("--username", default=None, help="MQTT username")
    broker.add_argument(
        "--password",
        default=os.environ.get("SMARTPBX_SIM_PASSWORD"),
        help="MQTT password (or set $SMARTPBX_SIM_PASSWORD)",
    )
    broker.add_argument("--client-id", default=None, help="MQTT client id (None: random)")
    broker.add_argument(
        "--token", default=defaults.token, help="the PBX's API token (topic device/<token>/...)"
    )

    plan = parser.add_argument_group("PBX")
    plan.add_argument(
        "--extensions",
        type=_non_negative_int,
        default=defaults.sip_extensions,
        help="SIP extensions (numbered from 8001)",
    )
    plan.add_argument(
        "--fxs",
        type=_non_negative_int,
        default=defaults.fxs_extensions,
        help="FXS extensions (numbered from 2001)",
    )
    plan.add_argument(
        "--sip-trunks", type=_non_negative_int, default=defaults.sip_trunks, help="SIP trunks"
    )
    plan.add_argument(
        "--fxo-trunks",
        type=_non_negative_int,
        default=defaults.fxo_trunks,
        help="FXO trunks (analogue lines, with vbat)",
    )
    plan.add_argument(
        "--queues",
        type=_non_negative_int,
        default=defaults.queues,
        help="queues (numbered from 6666)",
    )
    plan.add_argument(
        "--queue-members",
        type=_non_negative_int,
        default=defaults.queue_members,
        help="members per queue",
    )
    plan.add_argument(
        "--conferences",
        type=_non_negative_int,
        default=defaults.conferences,
        help="conference rooms (numbered from 7001)",
    )
    plan.add_argument(
        "--ivr",
        default=",".join(defaults.ivr_numbers),
        help="IVR numbers, comma separated ('' for none)",
    )
    plan.add_argument("--devicename", default=defaults.devicename, help="deviceInfo devicename")
    plan.add_argument("--serial", default=defaults.serial, help="deviceInfo sn")
    plan.add_argument("--firmware", default=defaults.firmware, help="deviceInfo firmwarever")
    plan.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of names, PINs, call ids and traffic"
    )

    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument(
        "--traffic",
        type=_non_negative_float,
        default=0.0,
        metavar="RATE",
        help="random live calls per minute (0: none)",
    )
    behaviour.add_argument(
        "--answer-delay",
        type=float,
        default=defaults.answer_delay,
        help="seconds a called phone rings before answering (<0: never)",
    )
    behaviour.add_argument(
        "--ring-timeout",
        type=_non_negative_float,
        default=defaults.ring_timeout,
        help="seconds before an unanswered call ends with NO ANSWER",
    )
    behaviour.add_argument(
        "--profile",
        choices=[profile.value for profile in FirmwareProfile],
        default=FirmwareProfile.DOCUMENT.value,
        help="firmware to play: 'document' (the vendor document, its quirks) or 'field' "
        "(extcallinfo/atxfer/atxferoperate, queue \"\" pauses everywhere, 'paused', {} for "
        "empty lists, callstatus/hangup events, status topic, Inbound/Outbound)",
    )
    behaviour.add_argument(
        "--quirk",
        action="append",
        choices=_QUIRKS,
        default=[],
        help="wire-format deviation to reproduce (repeatable)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: log every command; -vv: also MQTT client internals",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> PbxConfig:
    answer_delay: float | None = args.answer_delay
    if answer_delay is not None and answer_delay < 0:
        answer_delay = None
    return PbxConfig(
        token=args.token,
        serial=args.serial,
        devicename=args.devicename,
        firmware=args.firmware,
        sip_extensions=args.extensions,
        fxs_extensions=args.fxs,
        sip_trunks=args.sip_trunks,
        fxo_trunks=args.fxo_trunks,
        queues=args.queues,
        queue_members=args.queue_members,
        conferences=args.conferences,
        ivr_numbers=tuple(n.strip() for n in args.ivr.split(",") if n.strip()),
        seed=args.seed,
        answer_delay=answer_delay,
        ring_timeout=args.ring_timeout,
        quirks=Quirks(**dict.fromkeys(args.quirk, True)),
        profile=FirmwareProfile(args.profile),
    )


async def run(args: argparse.Namespace) -> None:
    runner = SimulatorRunner(
        config_from_args(args),
        host=args.host,
        port=args.port,
        username=args.username,
        password=args.password,
        client_id=args.client_id,
        traffic=args.traffic,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
    _LOGGER.info("Simulated PBX: %s", runner.pbx.describe())
    _LOGGER.info("Connecting to %s:%s (Ctrl-C to stop)", args.host, args.port)
    # Do not wait for the first connection: keep retrying until the broker comes up.
    await runner.start(connect_timeout=None)
    try:
        await stop.wait()
    finally:
        _LOGGER.info("Stopping")
        await runner.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose >= 2 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _LOGGER.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        # Building a PBX once checks the config and the dial plan (no number used twice).
        SimulatedPbx(config_from_args(args))
    except ValueError as err:
        build_parser().error(str(err))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
