"""Write the 29 3D-SGRL bodies as MJCF files: envs/<family>/<name>.xml.

    python -m equirl.morphology.write_envs [--out envs] [--check]

The files are generated from `equirl.morphology.sgrl` by the MjSpec builder;
`--check` writes nothing and exits with status 1 if any file is missing or
differs from what the builder makes now.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from equirl.morphology.builder import to_xml
from equirl.morphology.sgrl import BODY_NAMES, family_of, sgrl_body


def env_path(name: str, out: Path) -> Path:
    """Where body `name`'s file goes under `out`."""
    return Path(out) / family_of(name) / f"{name}.xml"


def write_envs(out: Path = Path("envs")) -> list[Path]:
    """Write every benchmark body under `out`; returns the paths written."""
    written = []
    for name in BODY_NAMES:
        path = env_path(name, out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_xml(sgrl_body(name)))
        written.append(path)
    return written


def stale_envs(out: Path = Path("envs")) -> list[Path]:
    """The body files under `out` that are missing or out of date."""
    stale = []
    for name in BODY_NAMES:
        path = env_path(name, out)
        if not path.is_file() or path.read_text() != to_xml(sgrl_body(name)):
            stale.append(path)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("envs"), help="folder to write into (default: envs)")
    parser.add_argument("--check", action="store_true", help="only report missing or out-of-date files")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_envs(args.out)
        for path in stale:
            print(f"out of date: {path}")
        return 1 if stale else 0
    paths = write_envs(args.out)
    print(f"wrote {len(paths)} bodies under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
