"""Switches of the Smart PBX integration: pausing queue members."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
from .coordinator import SmartPbxConfigEntry, SmartPbxData, SmartPbxQueueCoordinator
from .entity import SmartPbxEntity, async_add_entities_for_new_keys, child_device_info
from .pbx.models import QueueMember
from .translated_errors import async_pbx_call

PARALLEL_UPDATES = 1

MEMBER_PAUSED = SwitchEntityDescription(key="paused", translation_key="member_paused")


def _member_unique_part(queue: str, agent: str) -> str:
    return f"queue_{queue}_member_{agent}"


class QueueMemberPausedSwitch(SmartPbxEntity[SmartPbxQueueCoordinator, QueueMember], SwitchEntity):
    """On while a queue member (agent) is paused: the queue does not ring them."""

    def __init__(self, runtime: SmartPbxData, queue: str, agent: str) -> None:
        super().__init__(
            runtime.queues,
            runtime,
            MEMBER_PAUSED,
            device_info=child_device_info(runtime, "queue", queue),
            unique_part=_member_unique_part(queue, agent),
        )
        self.queue = queue
        self.agent = agent
        self._attr_translation_placeholders = {"agent": agent}

    @property
    def subject(self) -> QueueMember | None:
        queue = self.coordinator.data.get(self.queue)
        if queue is None or queue.status is None:
            return None
        return next((m for m in queue.status.members if m.agent == self.agent), None)

    @property
    def is_on(self) -> bool | None:
        return None if (member := self.subject) is None else member.paused

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self._async_set_paused(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._async_set_paused(False)

    async def _async_set_paused(self, paused: bool) -> None:
        await async_pbx_call(self.runtime.client.queue_pause(self.queue, self.agent, paused))
        # Read the state back from the PBX rather than assume it.
        await self.runtime.queues.async_refresh_one(self.queue)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SmartPbxConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    data = entry.runtime_data
    # The members of a queue whose status the PBX refused this time are kept: a passing
    # refusal must not delete (and lose the customisation of) their switches.
    last_members: dict[str, set[str]] = {}

    def current_members() -> set[tuple[str, str]]:
        for number, queue in data.queues.data.items():
            if queue.status is not None:
                last_members[number] = {member.agent for member in queue.status.members}
        for number in set(last_members) - set(data.queues.data):
            del last_members[number]
        return {(number, agent) for number, agents in last_members.items() for agent in agents}

    @callback
    def remove_switches(vanished: set[tuple[str, str]]) -> None:
        # Their queue's device stays, so they do not go with it.
        registry = er.async_get(hass)
        for queue, agent in vanished:
            unique_id = f"{data.serial}_{_member_unique_part(queue, agent)}_{MEMBER_PAUSED.key}"
            if entity_id := registry.async_get_entity_id("switch", DOMAIN, unique_id):
                registry.async_remove(entity_id)

    async_add_entities_for_new_keys(
        entry,
        data.queues,
        current_members,
        lambda key: [QueueMemberPausedSwitch(data, *key)],
        async_add_entities,
        remove_switches,
    )
