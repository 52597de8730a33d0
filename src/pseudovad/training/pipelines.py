"""The registered pipelines: importing this module registers every built-in one in PIPELINES.

A new pipeline is a Pipeline subclass decorated with `@PIPELINES.register("name")`, in a module
imported here (or by the user's code before the config is read).
"""

import dataclasses

import torch

from pseudovad.config import Config
from pseudovad.registry import OBJECTIVES, PIPELINES, SOURCES
from pseudovad.training import autoencoder, ffp, ognet, thesis  # noqa: F401  (registers them)
from pseudovad.training.base import Pipeline


def build_pipeline(config: Config, device: torch.device, training: bool = True) -> Pipeline:
    """The pipeline `config.pipeline` names; `training=False` builds only what scoring needs."""
    return PIPELINES.get(config.pipeline)(config, device, training)


def read_sections(config: Config) -> tuple[str, ...]:
    """The config sections a run of `config` reads: the common ones and its pipeline's. They are what
    config.yaml saves, what `--resume` compares, and what a grid compares with a finished run."""
    return (*Config.COMMON, *PIPELINES.get(config.pipeline).sections)


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def behaviour_revisions(config: Config) -> dict[str, int]:
    """{"kind name": revision} of the pipeline and every registered objective and source a run of
    `config` trains with. A class's `revision` goes up when the same config starts to train something
    else (a fixed bug; its docstring says what changed), so a run saved under another revision is not
    the run its config now makes, although the two configs are equal."""
    pipeline = PIPELINES.get(config.pipeline)
    found = {f"pipeline {config.pipeline}": pipeline.revision}
    pending = [getattr(config, section) for section in pipeline.sections]
    while pending:
        value = pending.pop()
        if isinstance(value, list):
            pending += value
        elif dataclasses.is_dataclass(value):
            for registry in (OBJECTIVES, SOURCES):
                name = getattr(value, "name", None)
                if isinstance(name, str) and name in registry.names() and type(value) is registry.options(name):
                    found[f"{registry.kind} {name}"] = registry.get(name).revision
            pending += [getattr(value, f.name) for f in dataclasses.fields(value)]
    return found


def stale_revisions(saved: dict[str, int] | None, current: dict[str, int]) -> str | None:
    """What differs between the revisions a run was saved with (None: a run from before revisions
    were recorded, so 1 for each) and the `current` ones (behaviour_revisions); None if nothing does."""
    saved = saved or {}
    changed = [f"{key} {saved.get(key, 1)} -> {now}" for key, now in current.items() if saved.get(key, 1) != now]
    return ", ".join(changed) or None
