"""How often a cuboid pseudo-anomaly is invisible: the share of boxes whose mean |change| (grey levels of
255, inside the box) is under 2 and under 5, placed anywhere and on motion (`place: moving`).

200 training clips drawn with seed 1, the cuboid source's defaults, its own draws seeded 0. Writes nothing
but its printout (docs/RESULTS.md, "Where the too-fast cuboid goes"):

    python benchmarks/cuboid_placement.py synthetic_pseudo runs/ntp_cuboid_place/data/synthetic_10
    python benchmarks/cuboid_placement.py ped2_128_pseudo ../shared/data/ped2
"""

from __future__ import annotations

import argparse

import numpy as np

from pseudovad.config import component, load_config
from pseudovad.registry import SOURCES
from pseudovad.training.loop import training_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a config whose scale sets the frame size (e.g. synthetic_pseudo)")
    parser.add_argument("data", help="the dataset whose training clips are used")
    args = parser.parse_args()
    config = load_config(args.config, [("data.root", args.data)])
    clips = training_clips(config)
    indices = np.random.default_rng(1).choice(len(clips), 200, replace=False)
    normal = clips.batch(indices)[:, :-1]
    for place in ("anywhere", "moving"):
        source = SOURCES.get("cuboid")(component(SOURCES, name="cuboid", place=place), config)
        made = source.make(clips, indices, np.random.default_rng(0))
        change = ((made.clips[:, :-1] - normal).abs() * 127.5).flatten(1)
        inside = (change * (change > 0)).sum(1) / (change > 0).sum(1).clamp(min=1)
        print(f"{args.config} {place}: median {inside.median():.1f} grey levels; "
              f"under 2: {(inside < 2).float().mean():.2f}, under 5: {(inside < 5).float().mean():.2f}")


if __name__ == "__main__":
    main()
