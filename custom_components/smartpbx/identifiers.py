"""Device identifiers and unique ids, all derived from the PBX serial number.

Never from a host, a token or a name: those change, the serial does not.
"""

from __future__ import annotations

from .const import DOMAIN


def pbx_identifier(serial: str) -> tuple[str, str]:
    return (DOMAIN, serial)


def extension_identifier(serial: str, number: str) -> tuple[str, str]:
    return (DOMAIN, f"{serial}_extension_{number}")


def trunk_identifier(serial: str, name: str) -> tuple[str, str]:
    return (DOMAIN, f"{serial}_trunk_{name}")


def queue_identifier(serial: str, number: str) -> tuple[str, str]:
    return (DOMAIN, f"{serial}_queue_{number}")


def conference_identifier(serial: str, number: str) -> tuple[str, str]:
    return (DOMAIN, f"{serial}_conference_{number}")
