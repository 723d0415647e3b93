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

# Who they are: the demo's phonebook (the integration's options) names them, each
# written the way a person would type it, not as the PBX shows it.
EXTERNAL_CALLER_NAMES: Final = {
    "+39 06 1234 5678": "Pizzeria Roma",
    "+49 30 123456": "Berlin Office",
    "+44 20 7946 00": "London Partners",
    "555 12 34": "Neighbour",
    "+86 123 5432 341231": "Shenzhen Supplier",
    "02 9876 5432": "Milan Branch",
    "778 45 12": "Dr. Bianchi",
    "+33 1 42 27 81 86": "Paris Office",
}

LETTERS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
