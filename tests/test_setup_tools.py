"""scripts/setup.sh installs every program the tests and the project's commands call: a
fresh CI machine has only what it installs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: programs the tests run by name: a subprocess call whose list starts with the program's
#: name as a string literal, or shutil.which of it
CALLED = re.compile(
    r"""(?:subprocess\.(?:run|Popen|check_call|check_output)\(\s*\[\s*|"""
    r'''shutil\.which\(\s*)"([A-Za-z0-9_.-]+)"'''
)
#: there on every Debian machine the setup runs on (coreutils, dash), or the venv's own
ALWAYS_THERE = {"sh", "bash", "python", "python3", "sitewatch", "true", "false", "kill"}
#: programs that come in the package of one setup.sh checks for
SAME_PACKAGE = {
    "mosquitto_sub": "mosquitto_pub",
    "mosquitto_passwd": "mosquitto",
    "umount": "mount",
    "pg_ctl": "initdb",
    "postgres": "initdb",
}


def _setup_checks() -> set[str]:
    """The programs scripts/setup.sh checks for and installs when missing."""
    text = (ROOT / "scripts/setup.sh").read_text()
    checked = set(re.findall(r"command -v ([A-Za-z0-9_.-]+) >/dev/null \|\|", text))
    if "/bin/initdb" in text:  # PostgreSQL's programs are not on PATH on Debian
        checked.add("initdb")
    return checked


def test_setup_installs_every_program_the_tests_call() -> None:
    called: dict[str, str] = {}
    for path in sorted((ROOT / "tests").glob("*.py")) + sorted(ROOT.glob("sitewatch/**/*.py")):
        for name in CALLED.findall(path.read_text()):
            called.setdefault(name, path.relative_to(ROOT).as_posix())
    assert "openssl" in called  # the scan finds what it is meant to
    checked = _setup_checks()
    missing = {
        name: where
        for name, where in called.items()
        if SAME_PACKAGE.get(name, name) not in checked | ALWAYS_THERE
    }
    assert not missing, f"called but not installed by scripts/setup.sh: {missing}"
