"""Fixed word lists the simulator draws names, numbers and sounds from."""

from __future__ import annotations

from typing import Final

# Names an office gives its phones; "" stands for the blank names the PBX ships with
# (the document's FXS extensions all have ``"username": ""``).
EXTENSION_NAMES: Final = (
    "Reception",
    "Anna Schmidt",
    "",
    "Luca Rossi",
    "Sales",
    "Marie Dubois",
    "",
    "Jan Novak",
    "Warehouse",
    "Sofia García",
    "Meeting Room",
    "",
    "Tom Baker",
    "Accounting",
    "Yuki Tanaka",
    "Support",
    "",
    "Olga Ivanova",
    "Lobby",
    "Pedro Alves",
    "Fax",
    "Emma Johansson",
    "",
    "Kitchen",
)

QUEUE_DESCRIPTIONS: Final = ("Sales", "Support", "n/a", "Billing", "Front desk", "")
CONFERENCE_DESCRIPTIONS: Final = ("", "Daily stand-up", "Board room", "", "Partners")
QUEUE_STRATEGIES: Final = ("ringall", "random", "roundrobin", "rrmemory")

# Wake-up sounds alarm_set accepts; any other clock_sound is refused as on the PBX.
CLOCK_SOUNDS: Final = ("wakeup.wav", "alarm.wav", "morning.wav", "beep.wav")

# Numbers outside callers ring from, in several national formats.
EXTERNAL_NUMBERS: Final = (
    "0612345678",
    "+4930123456",
    "004420794600",
    "5551234",
    "+861235432341231",
    "0298765432",
    "7784512",
    "+33142278186",
)

LETTERS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
