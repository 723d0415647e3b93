"""Repair issues the user has to act on (kinds: const.py). Not fixable from the dashboard,
core's way for conditions that go away by themselves: each is deleted once its condition is gone.
"""

from __future__ import annotations

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_call_later
from homeassistant.util.hass_dict import HassKey

from .const import (
    DOMAIN,
    ISSUE_MQTT_NOT_AVAILABLE,
    ISSUE_PBX_NOT_ANSWERING,
    LOGGER,
    SILENT_REPAIR_AFTER,
)
from .coordinator import SmartPbxConfigEntry

_LEARN_MORE = {ISSUE_MQTT_NOT_AVAILABLE: "https://www.home-assistant.io/integrations/mqtt/"}


@callback
def async_create_issue(
    hass: HomeAssistant, kind: str, entry: SmartPbxConfigEntry, **placeholders: str
) -> None:
    """Raise issue ``kind`` (its translation key) for ``entry``."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        f"{kind}_{entry.entry_id}",
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=kind,
        translation_placeholders={"title": entry.title, **placeholders},
        learn_more_url=_LEARN_MORE.get(kind),
    )


@callback
def async_delete_issue(hass: HomeAssistant, kind: str, entry_id: str) -> None:
    ir.async_delete_issue(hass, DOMAIN, f"{kind}_{entry_id}")


@callback
def async_delete_issues(hass: HomeAssistant, entry_id: str) -> None:
    """Forget every issue of an entry that is being removed."""
    for kind in (ISSUE_MQTT_NOT_AVAILABLE, ISSUE_PBX_NOT_ANSWERING):
        async_delete_issue(hass, kind, entry_id)
    hass.data.get(_SILENCE_SINCE, {}).pop(entry_id, None)


_SILENCE_SINCE: HassKey[dict[str, float]] = HassKey(f"{DOMAIN}_silence_since")
"""Per entry id: since when (event loop time) its PBX has not answered."""


class PbxSilenceWatch:
    """Raises ``pbx_not_answering`` after SILENT_REPAIR_AFTER of silence, counted across setup
    retries and reloads (in ``hass.data``): a PBX whose token changed while Home Assistant
    was down never lets setup succeed, and must get the issue all the same."""

    def __init__(self, hass: HomeAssistant, entry: SmartPbxConfigEntry) -> None:
        self._hass = hass
        self._entry = entry
        self._silent_since = hass.data.setdefault(_SILENCE_SINCE, {})
        self._cancel_timer: CALLBACK_TYPE | None = None

    @callback
    def async_not_answering(self) -> None:
        """The PBX failed to answer while the broker was reachable: the issue is raised
        when the time is up, unless paused before."""
        now = self._hass.loop.time()
        since = self._silent_since.setdefault(self._entry.entry_id, now)
        remaining = since + SILENT_REPAIR_AFTER.total_seconds() - now
        if remaining <= 0:
            self._async_raise_issue()
        elif self._cancel_timer is None:
            self._cancel_timer = async_call_later(self._hass, remaining, self._async_raise_issue)

    @callback
    def async_answered(self) -> None:
        """The PBX answered: the silence (and its issue) is over."""
        self.async_pause()
        if self._silent_since.pop(self._entry.entry_id, None) is not None:
            async_delete_issue(self._hass, ISSUE_PBX_NOT_ANSWERING, self._entry.entry_id)

    @callback
    def async_pause(self) -> None:
        """Stop the timer (broker connection lost, or unload); the start time is kept."""
        if self._cancel_timer is not None:
            self._cancel_timer()
            self._cancel_timer = None

    @callback
    def _async_raise_issue(self, _now: object = None) -> None:
        self.async_pause()  # the timer may have called: it is spent
        minutes = int(SILENT_REPAIR_AFTER.total_seconds() // 60)
        LOGGER.debug("The PBX has not answered for %d minutes; raising a repair issue", minutes)
        async_create_issue(self._hass, ISSUE_PBX_NOT_ANSWERING, self._entry, minutes=str(minutes))
