"""Device identifiers, all from the PBX serial number: a host, token or name may change."""

from __future__ import annotations

from .const import DOMAIN


def pbx_identifier(serial: str) -> tuple[str, str]:
    return (DOMAIN, serial)


def child_identifier(serial: str, kind: str, key: str) -> tuple[str, str]:
    """The device of an extension, trunk, queue or conference (``kind``) of the PBX."""
    return (DOMAIN, f"{serial}_{kind}_{key}")
