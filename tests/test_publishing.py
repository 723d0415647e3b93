"""What publishing on GitHub and HACS relies on, and nothing here runs by itself.

The workflow files are read only by GitHub, the licence only by HACS (through GitHub), and
the smoke test on the newest Home Assistant release (scripts/compat_ha_next.py) only by
scripts/test: these tests check that they say what the README promises.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
from pathlib import Path
import re
import tomllib
from types import ModuleType
from typing import Any

from packaging.requirements import Requirement
import pytest
import yaml

ROOT = Path(__file__).parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
HACS = json.loads((ROOT / "hacs.json").read_text(encoding="utf-8"))
MANIFEST = json.loads(
    (ROOT / "custom_components" / "smartpbx" / "manifest.json").read_text(encoding="utf-8")
)


def _workflow(name: str) -> dict[Any, Any]:
    workflow: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as the boolean True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def _steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("#")[0].strip().split("==")
            pins[name.lower()] = version
    return pins


def test_validate_workflow_runs_hassfest_and_hacs_on_push_pull_request_and_daily() -> None:
    workflow = _workflow("validate.yml")
    assert {"push", "pull_request", "schedule"} <= set(workflow["on"])
    assert workflow["on"]["schedule"][0]["cron"].split()[2:] == ["*", "*", "*"]  # daily
    steps = _steps(workflow)
    uses = [step.get("uses", "") for step in steps]
    assert any(use.startswith("home-assistant/actions/hassfest@") for use in uses), uses
    hacs = [step for step in steps if step.get("uses", "").startswith("hacs/action@")]
    assert len(hacs) == 1, uses
    assert hacs[0]["with"]["category"] == "integration"


def test_test_workflow_runs_scripts_test_with_cached_venvs() -> None:
    workflow = _workflow("test.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    steps = job["steps"]
    assert [step["run"] for step in steps if "run" in step] == ["scripts/test"]
    (cache,) = [step for step in steps if step.get("uses", "").startswith("actions/cache@")]
    assert set(cache["with"]["path"].split()) == {
        ".venv",
        ".venv-ha-min",
        ".venv-ha-next",
        ".cache",
    }
    for keyed_on in (
        "requirements_test.txt",
        "requirements_test_min.txt",
        "requirements_ha_next.txt",
    ):
        assert keyed_on in cache["with"]["key"]
    # The cache is restored before the suite runs.
    assert steps.index(cache) < next(i for i, step in enumerate(steps) if "run" in step)


def test_a_release_workflow_exists_exactly_when_hacs_installs_a_zip() -> None:
    zips = [path.name for path in WORKFLOWS.glob("*.y*ml") if "zip" in path.read_text()]
    if HACS.get("zip_release"):
        assert HACS.get("filename"), "zip_release needs filename"
        assert zips, "zip_release is set but no workflow builds the zip"
    else:
        assert "filename" not in HACS
        assert zips == []


def test_licence_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "END OF TERMS AND CONDITIONS" in text
    assert "[LICENSE](LICENSE)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_newest_release_venv_has_the_integrations_requirements() -> None:
    """The smoke stage's venv pins a version of each requirement the manifest allows."""
    pins = _pins(ROOT / "requirements_ha_next.txt")
    for requirement in map(Requirement, MANIFEST["requirements"]):
        pinned = pins.get(requirement.name.lower())
        assert pinned is not None, requirement
        assert requirement.specifier.contains(pinned), requirement


def test_readme_names_the_home_assistant_releases_tested() -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    pinned = (ROOT / "requirements_test.txt").read_text(encoding="utf-8")
    newest = re.search(r"homeassistant (\d+\.\d+\.\d+)", pinned)
    newest_release = _pins(ROOT / "requirements_ha_next.txt")["homeassistant"]
    assert newest is not None
    assert f"Home Assistant {HACS['homeassistant']} or newer" in readme
    for version in (HACS["homeassistant"], newest.group(1), newest_release):
        assert version in readme, version


def test_tool_configuration_is_in_setup_cfg_and_only_ruff_in_pyproject(
    pytestconfig: pytest.Config,
) -> None:
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    assert {"tool:pytest", "coverage:run", "coverage:report", "mypy"} <= set(setup_cfg)
    assert setup_cfg["mypy"].getboolean("strict")
    assert setup_cfg["coverage:run"]["source"].split() == [
        "custom_components/smartpbx",
        "smartpbx_sim",
    ]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject == {"tool": {"ruff": pyproject["tool"]["ruff"]}}
    # pytest ignores setup.cfg when pytest.ini or a pytest table in pyproject.toml exists.
    assert pytestconfig.inipath == ROOT / "setup.cfg"
    assert pytestconfig.getini("asyncio_mode") == "auto"


# --------------------------------------------------------------------------------------
# The smoke test's log check (scripts/compat_ha_next.py is a script, not a package)


@pytest.fixture(scope="module")
def compat() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "compat_ha_next", ROOT / "scripts" / "compat_ha_next.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_LOG = """\
2026-11-05 10:00:00.100+00:00 WARNING (SyncWorker_0) [homeassistant.loader] We found a \
custom integration smartpbx which has not been tested by Home Assistant.
2026-11-05 10:00:00.200+00:00 ERROR (MainThread) [homeassistant.setup] Setup failed for \
'analytics': Unable to import component
2026-11-05 10:00:01.000+00:00 ERROR (MainThread) [homeassistant] Error doing job: Task \
exception was never retrieved
Traceback (most recent call last):
  File "/tmp/x/config/custom_components/smartpbx/coordinator.py", line 1, in poll
ZeroDivisionError: division by zero
2026-11-05 10:00:02.000+00:00 ERROR (MainThread) [custom_components.smartpbx.sensor] boom
2026-11-05 10:00:03.000+00:00 WARNING (MainThread) [homeassistant.helpers.frame] Detected \
that custom integration 'smartpbx' calls a deprecated function
2026-11-05 10:00:04.000+00:00 INFO (MainThread) [custom_components.smartpbx] set up
"""


def test_compat_log_check_finds_our_errors_and_tracebacks_only(compat: ModuleType) -> None:
    errors, warnings = compat.problems_in_log(_LOG)
    assert len(errors) == 2
    assert errors[0].splitlines()[0].endswith("Task exception was never retrieved")
    assert errors[1].endswith("[custom_components.smartpbx.sensor] boom")
    assert "ZeroDivisionError" in errors[0]
    assert len(warnings) == 1
    assert "deprecated function" in warnings[0]


def test_compat_log_check_reads_the_format_without_utc_offset(compat: ModuleType) -> None:
    older = "2026-10-05 10:00:02.000 ERROR (MainThread) [custom_components.smartpbx] boom\n"
    assert len(compat.problems_in_log(older)[0]) == 1
