"""The small MQTT transport interface the client talks through.

The client needs only publish, subscribe and a connection state. Keeping the interface
this small lets the same client run over aiomqtt (see ``aiomqtt_transport``) or over
Home Assistant's MQTT integration, whose ``async_publish``/``async_subscribe`` map onto
it in a few lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

type MessageCallback = Callable[[str, bytes], None]
"""Called with (topic, payload) for every message matching a subscription."""

type ConnectionCallback = Callable[[bool], None]
"""Called with True when the transport (re)connects and False when it disconnects."""

type Unsubscribe = Callable[[], None]


class Transport(Protocol):
    """What the client needs from an MQTT connection."""

    @property
    def connected(self) -> bool:
        """Whether messages can be published right now."""
        ...

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish one message, never retained. Raises PbxNotConnectedError when not connected.

        Never retained: a retained command is replayed to the PBX at every reconnect.
        """
        ...

    async def subscribe(
        self, topic_filter: str, callback: MessageCallback, qos: int = 1
    ) -> Unsubscribe:
        """Subscribe; the subscription survives reconnects. Returns a sync unsubscribe."""
        ...

    def add_connection_listener(self, callback: ConnectionCallback) -> Unsubscribe:
        """Register for connect/disconnect notifications. Returns a sync remover."""
        ...
