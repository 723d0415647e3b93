"""JSON encoding and decoding, with ``orjson`` when it is installed.

``orjson`` is a soft dependency: it is several times faster than the standard library on
the small objects the PBX sends, but the integration's manifest need not require it, so
everything here falls back to :mod:`json` with identical results.
"""

from __future__ import annotations

from collections.abc import Callable
import json
from typing import Any

JSON_BACKEND: str
"""Which library does the work: ``"orjson"`` or ``"json"``."""

_loads: Callable[[bytes], Any]
_dumps: Callable[[Any], bytes]

try:
    import orjson
except ImportError:  # pragma: no cover - exercised by the isolation test in a subprocess
    JSON_BACKEND = "json"

    def _loads(data: bytes) -> Any:
        return json.loads(data)

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    _DECODE_ERRORS: tuple[type[Exception], ...] = (ValueError,)
else:
    JSON_BACKEND = "orjson"
    _loads = orjson.loads
    _dumps = orjson.dumps
    # orjson.JSONDecodeError subclasses ValueError; UnicodeDecodeError is one too.
    _DECODE_ERRORS = (ValueError,)


class JsonDecodeError(ValueError):
    """The bytes are not UTF-8 JSON."""


def loads(data: bytes) -> Any:
    """Decode UTF-8 JSON bytes. Raises :class:`JsonDecodeError` for anything else."""
    try:
        return _loads(data)
    except _DECODE_ERRORS as err:
        raise JsonDecodeError(str(err)) from err


def dumps(value: Any) -> bytes:
    """Encode to compact UTF-8 JSON. Raises TypeError for values JSON cannot carry."""
    return _dumps(value)
