"""Device identifiers, all from the PBX serial number: a host, token or name may change."""

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
