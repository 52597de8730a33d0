"""Read each target of benchmarks/targets.json from the result file it names and say whether it is met.

    python benchmarks/check_targets.py [--targets benchmarks/targets.json]

A path is a list of keys into the file's JSON; "*" takes the mean over every entry at that level (the
seeds of a table, say). With "minus", the value is the difference of two such paths. Exits 0 whether
targets are met or not: it reports, it does not gate; a target it cannot read is an error (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def read(values: object, path: list[str]) -> float:
    """The number at `path` in `values`; "*" averages over the entries at its level."""
    if not path:
        return float(values)
    key, rest = path[0], path[1:]
    if key == "*":
        entries = values.values() if isinstance(values, dict) else values
        numbers = [read(entry, rest) for entry in entries]
        return sum(numbers) / len(numbers)
    return read(values[key], rest)


def measured(target: dict, root: Path) -> float:
    values = json.loads((root / target["file"]).read_text())
    value = read(values, target["path"])
    return value - read(values, target["minus"]) if "minus" in target else value


def met(target: dict, value: float) -> bool:
    return value >= target["at_least"] if "at_least" in target else value <= target["at_most"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=Path, default=HERE / "targets.json")
    args = parser.parse_args()
    for target in json.loads(args.targets.read_text())["targets"]:
        try:
            value = measured(target, args.targets.parent)
        except (OSError, KeyError, TypeError, ValueError, ZeroDivisionError) as error:
            print(f"{target['id']}: cannot read {target['file']} at {target['path']}: {error!r}", file=sys.stderr)
            return 1
        bound = f">= {target['at_least']:g}" if "at_least" in target else f"<= {target['at_most']:g}"
        print(f"{'met   ' if met(target, value) else 'missed'} {target['id']} (issue {target['issue']}): {value:.4g}, target {bound}: {target['what']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
