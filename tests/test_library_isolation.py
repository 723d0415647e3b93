"""The PBX client library stands alone: no Home Assistant, and orjson optional."""

from __future__ import annotations

import ast
from pathlib import Path
import subprocess
import sys

import pytest

import custom_components.smartpbx.pbx as pbx_package

LIBRARY = Path(pbx_package.__file__).parent
PROJECT_ROOT = LIBRARY.parents[2]
MODULES = sorted(LIBRARY.glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names (absolute)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_library_has_modules() -> None:
    names = {path.stem for path in MODULES}
    assert {"client", "parsing", "validation", "aiomqtt_transport", "models"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_no_module_imports_home_assistant(path: Path) -> None:
    offending = {
        name
        for name in imported_modules(path)
        if name == "homeassistant"
        or name.startswith("homeassistant.")
        or name.startswith("custom_components")
    }
    assert offending == set(), f"{path.name} imports {offending}"


def test_only_relative_imports_within_the_library() -> None:
    """The library never reaches into the integration around it."""
    for path in MODULES:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 1:
                pytest.fail(f"{path.name} imports from outside the library: {ast.dump(node)}")


# The integration's own __init__ imports Home Assistant; the library must not need it.
# Stand-in parent packages let the library load under its real name without running
# the integration's __init__, exactly as a vendored copy or a separate package would.
_BARE_PARENTS = (
    "import sys, types\n"
    "for name, path in (('custom_components', 'custom_components'),\n"
    "                   ('custom_components.smartpbx', 'custom_components/smartpbx')):\n"
    "    module = types.ModuleType(name)\n"
    "    module.__path__ = [path]\n"
    "    sys.modules[name] = module\n"
)


def run_python(code: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", _BARE_PARENTS + code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def test_importing_the_library_loads_no_home_assistant() -> None:
    output = run_python(
        "import sys\n"
        "import custom_components.smartpbx.pbx as pbx\n"
        "assert pbx.SmartPbxClient and pbx.AiomqttTransport\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'homeassistant'))\n"
    )
    assert output == "[]"


def test_the_library_works_without_orjson() -> None:
    output = run_python(
        "import sys\n"
        "sys.modules['orjson'] = None  # makes `import orjson` fail\n"
        "from custom_components.smartpbx.pbx import jsoncodec\n"
        "from custom_components.smartpbx.pbx.parsing import parse_reply\n"
        "assert jsoncodec.JSON_BACKEND == 'json', jsoncodec.JSON_BACKEND\n"
        "data = jsoncodec.dumps({'cmd': 'dial', 'name': 'Sofía'})\n"
        'assert parse_reply(jsoncodec.loads(b\'{"status": "Success"}\')).success\n'
        "try:\n"
        "    jsoncodec.loads(b'\\xff')\n"
        "except jsoncodec.JsonDecodeError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('no JsonDecodeError')\n"
        "print(data.decode())\n"
    )
    assert output == '{"cmd":"dial","name":"Sofía"}'
