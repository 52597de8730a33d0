"""The registered pipelines: importing this module registers every built-in one in PIPELINES.

A new pipeline is a Pipeline subclass decorated with `@PIPELINES.register("name")`, in a module
imported here (or by the user's code before the config is read).
"""

import torch

from pseudovad.config import Config
from pseudovad.registry import PIPELINES
from pseudovad.training import autoencoder, ffp, ognet, thesis  # noqa: F401  (registers them)
from pseudovad.training.base import Pipeline


def build_pipeline(config: Config, device: torch.device, training: bool = True) -> Pipeline:
    """The pipeline `config.pipeline` names; `training=False` builds only what scoring needs."""
    return PIPELINES.get(config.pipeline)(config, device, training)


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
