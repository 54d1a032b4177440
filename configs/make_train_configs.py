"""Write configs/train/<suite>_<algorithm>_<network>.yaml, every field spelled out.

    python configs/make_train_configs.py            # (re)write them
    python configs/make_train_configs.py --check    # fail if any is missing or stale

The values come from the tables of equirl/presets.py (which the quickstart
job also trains from): edit them there, then rerun this script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from equirl.config_io import to_dict
from equirl.presets import preset_names, train_preset

OUT = Path(__file__).resolve().parent / "train"


class _Dumper(yaml.SafeDumper):
    """Block mappings, but short lists on one line: `bodies: [hopper]`."""


_Dumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def render(suite: str, algorithm: str, network: str) -> str:
    config = train_preset(suite, algorithm, network)
    header = (
        f"# {suite} suite, {algorithm.upper()}, {network} networks; written by configs/make_train_configs.py.\n"
        f"#   equirl train --config configs/train/{config.run.name}.yaml [--set key=value ...] [--resume]\n"
        f"# algorithm: {config.algorithm}; blocks of other algorithms are kept so a run can\n"
        f"# switch with --set algorithm=... and still show every value.\n"
    )
    return header + yaml.dump(to_dict(config), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report files that are missing or stale")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    stale = []
    for suite, algorithm, network in preset_names():
        path = OUT / f"{suite}_{algorithm}_{network}.yaml"
        text = render(suite, algorithm, network)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text)
    for path in stale:
        print(("stale: " if args.check else "wrote ") + str(path))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
