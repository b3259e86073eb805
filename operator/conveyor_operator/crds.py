"""`python -m conveyor_operator.crds`: write the CRDs generated from the models to `crds/` and to the Helm chart's
`charts/conveyor/crds/` (identical copies), or with `--check` only report whether the committed files drift."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conveyor_operator._crds import crd_documents, render

_ROOT = Path(__file__).resolve().parents[2]
TARGETS = (_ROOT / "crds", _ROOT / "charts" / "conveyor" / "crds")


def expected_files() -> dict[str, str]:
    """File name -> the YAML it must hold."""
    return {name: render(document) for name, document in crd_documents().items()}


def drifted(targets: tuple[Path, ...] = TARGETS) -> list[Path]:
    """The CRD files whose content differs from the models' (or that are missing)."""
    found = []
    for directory in targets:
        for name, text in expected_files().items():
            path = directory / name
            if not path.is_file() or path.read_text() != text:
                found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conveyor_operator.crds", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed CRDs differ from the models")
    args = parser.parse_args(argv)
    if args.check:
        stale = drifted()
        for path in stale:
            print(f"{path} is stale: run python -m conveyor_operator.crds", file=sys.stderr)
        return 1 if stale else 0
    for directory in TARGETS:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in expected_files().items():
            (directory / name).write_text(text)
            print(directory / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
