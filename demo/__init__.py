"""The Smart PBX demo: a simulated PBX and a Home Assistant that shows it (scripts/develop)."""
