"""Write a run's results: ``results.json`` (every raw number and the machine),
``results.md`` (``_markdown.py``) and the plots (``_plots.py``)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _markdown import markdown
from _plots import plots
from _scenarios import Plan, server_specs
from _summary import Run, summarise, targets

PACKAGES = (
    "asyncfetch", "aiohttp", "orjson", "anyio", "stamina", "aiolimiter", "yarl",
    "aiometer", "python-intercom", "requests", "matplotlib",
)  # fmt: skip


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = platform.processor()
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        check=False,
    )
    with open("/proc/meminfo") as meminfo:
        memory_kib = int(meminfo.readline().split()[1])
    return {
        "platform": platform.platform(),
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "packages": versions,
        "git": git.stdout.strip() or None,
    }


def write(
    folder: Path, plan: Plan, runs: list[Run], info: dict[str, Any], scenarios: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarise(plan, runs)
    found = targets(summary)
    info.setdefault("finished_at", time.strftime("%Y-%m-%d %H:%M %Z"))
    document = {
        "mode": plan.name,
        "scenarios": scenarios,
        "machine": info,
        "plan": dataclasses.asdict(plan),
        "servers": {name: dataclasses.asdict(spec) for name, spec in server_specs(plan).items()},
        "targets": found,
        "summary": summary,
        "runs": runs,
    }
    (folder / "results.json").write_text(json.dumps(document, indent=1) + "\n")
    (folder / "results.md").write_text(markdown(plan, summary, found, info))
    plots(summary, folder)
    return summary, found
