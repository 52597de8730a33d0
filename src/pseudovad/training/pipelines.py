"""The registry of trainable pipelines, keyed by `config.pipeline`."""

from __future__ import annotations

import torch

from pseudovad.config import Config
from pseudovad.training.autoencoder import AutoencoderPipeline
from pseudovad.training.distributed import unwrap
from pseudovad.training.ffp import FFPPipeline
from pseudovad.training.ognet import OGNetPipeline
from pseudovad.training.pseudo import PseudoAnomalyPipeline

PIPELINES = {
    "ffp": FFPPipeline,
    "single_branch": PseudoAnomalyPipeline,
    "two_branch": PseudoAnomalyPipeline,
    "ognet": OGNetPipeline,
    "autoencoder": AutoencoderPipeline,
}
Pipeline = FFPPipeline | PseudoAnomalyPipeline | OGNetPipeline | AutoencoderPipeline


def build_pipeline(config: Config, device: torch.device) -> Pipeline:
    return PIPELINES[config.pipeline](config, device)


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pipeline_state(pipeline: Pipeline) -> dict:
    """Networks and optimizers as plain state dicts (what a checkpoint stores)."""
    return {
        "networks": {name: unwrap(net).state_dict() for name, net in pipeline.networks.items()},
        "optimizers": {name: opt.state_dict() for name, opt in pipeline.optimizers.items()},
    }


def load_pipeline_state(pipeline: Pipeline, state: dict, with_optimizers: bool = True) -> None:
    for name, net in pipeline.networks.items():
        unwrap(net).load_state_dict(state["networks"][name])
    if with_optimizers:
        for name, optimizer in pipeline.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
