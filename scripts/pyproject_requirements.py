"""Print the requirements of pyproject.toml, one per line, for installing the dependencies before the code (the
Dockerfile's cached layer): the build system's requirements, the project's dependencies and those of the extras
named in argv[1] (comma separated; extras naming `conveyor[...]` are expanded). Standard library only."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    found = [*data.get("build-system", {}).get("requires", []), *project.get("dependencies", [])]
    seen: set[str] = set()
    while extras:
        extra = extras.pop().strip()
        if not extra or extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"pyproject.toml has no extra {extra!r} (it has: {', '.join(sorted(optional))})")
        seen.add(extra)
        for requirement in optional[extra]:
            own = re.fullmatch(rf"\s*{re.escape(project['name'])}\[([^\]]+)\]\s*", requirement)
            if own:
                extras.extend(own.group(1).split(","))
            elif requirement not in found:
                found.append(requirement)
    return found


if __name__ == "__main__":
    wanted = sys.argv[1].split(",") if len(sys.argv) > 1 else []
    print("\n".join(requirements(Path("pyproject.toml"), wanted)))
