"""Every benchmark documented in bench/README.md runs once in its quick mode.

A benchmark is part of the product: one that no longer starts (an API it used changed)
must fail the suite, not the next person who measures. The benchmarks are found in the
README's ``sh`` blocks, so a newly documented one is run here without touching this file.
Each runs as documented (``.venv/bin/python bench/<name>.py``, here with the suite's
interpreter) with ``--quick`` added, and must exit 0 and print figures.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "bench" / "README.md"
#: a documented command: ``.venv/bin/python bench/<script>.py [args]``
COMMAND = re.compile(r"^\.venv/bin/python (bench/[\w-]+\.py)\b")
#: generous: a quick run is meant to take about 20 s on 2 shared cores
QUICK_LIMIT_S = 90.0


def documented_benchmarks(readme: str) -> list[str]:
    """The scripts named by the commands of the README's ``sh`` blocks, in order."""
    scripts: list[str] = []
    in_sh = False
    for line in readme.splitlines():
        if line.startswith("```"):
            in_sh = line.strip() == "```sh" and not in_sh
            continue
        match = COMMAND.match(line.strip()) if in_sh else None
        if match and match.group(1) not in scripts:
            scripts.append(match.group(1))
    return scripts


BENCHMARKS = documented_benchmarks(README.read_text())


def _starts_servers(script: str) -> bool:
    """A benchmark that starts Mosquitto, InfluxDB or PostgreSQL (sitewatch.programs.localstack),
    itself or through a helper of bench/, is an integration test."""
    text = (ROOT / script).read_text()
    helpers = [ROOT / "bench" / f"{m}.py" for m in re.findall(r"^from (\w+) import", text, re.M)]
    return any(
        "sitewatch.programs.localstack" in t
        for t in [text, *(h.read_text() for h in helpers if h.exists())]
    )


def _marks(script: str) -> list[pytest.MarkDecorator]:
    marks = [pytest.mark.benchmark, pytest.mark.timeout(QUICK_LIMIT_S + 30)]
    return [*marks, pytest.mark.integration] if _starts_servers(script) else marks


def test_the_readme_documents_the_benchmarks() -> None:
    """The parser finds the benchmarks (a README reshuffle must not make the test below
    silently run nothing), and each documented script exists."""
    assert {
        "bench/ingest_throughput.py",
        "bench/alert_latency.py",
        "bench/api_latency.py",
        "bench/attendance.py",
        "bench/camera.py",
        "bench/edge_agent.py",
    } <= set(BENCHMARKS)
    assert all((ROOT / s).is_file() for s in BENCHMARKS)


def test_the_parser_reads_only_sh_blocks() -> None:
    readme = (
        "```sh\n.venv/bin/python bench/a.py --x 1   # note\n```\n"
        ".venv/bin/python bench/outside.py\n"
        "```python\n.venv/bin/python bench/py.py\n```\n"
        "```sh\n.venv/bin/python bench/b.py\n.venv/bin/python bench/a.py --y\n```\n"
    )
    assert documented_benchmarks(readme) == ["bench/a.py", "bench/b.py"]


@pytest.mark.parametrize(
    "script", [pytest.param(s, id=Path(s).stem, marks=_marks(s)) for s in BENCHMARKS]
)
def test_benchmark_quick_run(script: str) -> None:
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, script, "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=QUICK_LIMIT_S + 20,
    )
    took = time.monotonic() - started
    out = run.stdout + run.stderr
    assert run.returncode == 0, f"{script} --quick exited {run.returncode}:\n{out[-3000:]}"
    assert len(re.findall(r"\d+(?:\.\d+)?", run.stdout)) >= 10, (
        f"{script} --quick printed no figures:\n{out[-3000:]}"
    )
    assert took < QUICK_LIMIT_S, f"{script} --quick took {took:.0f} s"
    print(f"{script} --quick: {took:.1f} s")
