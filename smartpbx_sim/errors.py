"""The error the simulated PBX raises when it refuses a request."""

from __future__ import annotations


class PbxError(Exception):
    """A request the PBX refuses; the message is what its ``Failed`` reply carries."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else "failed"
