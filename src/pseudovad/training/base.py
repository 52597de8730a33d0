"""The shape every pipeline has, so the training loop, evaluation, scoring, the report and export
work for each of them without knowing which one it is.

A pipeline owns its networks and optimisers (by name, so a checkpoint is `{name: state_dict}`),
turns clip indices into a batch, takes one training step on it, and scores clips. It declares its
scores once (`scores`: name, label, whether it is a probability) and how they fuse (`fused`);
everything downstream reads those declarations. Every score is oriented high = normal.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from pseudovad.config import Config
from pseudovad.data.clips import ClipDataset
from pseudovad.errors import ConfigError, PseudovadError
from pseudovad.training.distributed import unwrap
from pseudovad.training.hardware import resolve_precision, scoring_batch_size

FUSED = "combined"  # the one name of a fused score, in results.json, scores.csv and the report


def headline(scores: Mapping[str, object]) -> str:
    """The score a run is judged and ranked by, in a grid's table and in the report: the fused score
    where there is one (it is what a deployment alerts on), else the first score the pipeline declares."""
    return FUSED if FUSED in scores else next(iter(scores))


@dataclass(frozen=True)
class Score:
    """One per-frame score a pipeline produces (oriented high = normal)."""

    name: str
    label: str
    probability: bool = False  # already in [0, 1]: plotted as it is, not min-max normalised


@dataclass(frozen=True)
class Fusion:
    """S = minmax(w minmax(a) + (1 - w) minmax(b)) per video, of two scores oriented high = normal."""

    parts: tuple[str, str]
    weight: float = 0.5
    name: str = FUSED
    label: str = "fused score"


class NonFiniteLoss(RuntimeError):
    """A loss became NaN or Inf; the step was not applied."""

    def __init__(self, name: str, value: float) -> None:
        super().__init__(f"loss '{name}' is {value}")
        self.name = name


def check_finite(losses: dict[str, Tensor]) -> None:
    """Raise NonFiniteLoss naming the first loss that is NaN or infinite."""
    for name, value in losses.items():
        if not torch.isfinite(value):
            raise NonFiniteLoss(name, value.item())


@contextmanager
def frozen(network: nn.Module) -> Iterator[None]:
    """Let gradients pass through `network` to its input without accumulating in its parameters
    (and, under DDP, without a gradient exchange for parameters that get no gradient)."""
    network.requires_grad_(False)
    try:
        with network.no_sync() if isinstance(network, DistributedDataParallel) else nullcontext():
            yield
    finally:
        network.requires_grad_(True)


@contextmanager
def statistics_kept(network: nn.Module) -> Iterator[None]:
    """Run `network` in training mode without its running statistics (BatchNorm's buffers) moving:
    for a step that trains another network through this one, on inputs this one is not trained on."""
    saved = [buffer.detach().clone() for buffer in network.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(network.buffers(), saved):
                buffer.copy_(value)


class Pipeline:
    """Base class of every trainable pipeline (registered in training/pipelines.py).

    Subclasses set `scores`, `sections` (the config sections they read besides Config.COMMON) and
    `network_names` (attributes holding their networks), implement `make_optimizers`,
    `train_step`, `score` and `sample_images`; `predict` where a score compares a prediction with
    the frame. `training=False` builds only what scoring needs: no file named by the config is opened.
    """

    scores: ClassVar[tuple[Score, ...]] = ()
    sections: ClassVar[tuple[str, ...]] = ()
    revision: ClassVar[int] = 1  # raised when the same config trains differently: see pipelines.behaviour_revisions
    network_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Config, device: torch.device, training: bool = True) -> None:
        self.config = config
        self.device = device
        self.training = training
        self.precision, self.precision_reason = resolve_precision(config.train.precision, device)
        self.eval_batch_size = scoring_batch_size(config.eval.batch_size, config.data.height, config.data.width, device)

    # --- declarations -----------------------------------------------------------------------------

    @classmethod
    def check_config(cls, config: Config) -> str | None:
        """Why `config` cannot work for this pipeline (checked when the config is read), or None."""
        return None

    def fused(self) -> Fusion | None:
        """The fused score, if the pipeline has two scores worth fusing."""
        return None

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in self.network_names}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers of what this pipeline trains, by the names its checkpoints keep them under."""
        return {}

    @functools.cached_property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """make_optimizers(), built on first use: torch imports its compiler (~1.5 s) with the first
        optimiser, which a process that only scores (evaluate, score, live, export) would pay for nothing."""
        return self.make_optimizers()

    # --- shared mechanics ------------------------------------------------------------------------------

    def autocast(self) -> torch.autocast:
        """bfloat16 autocast for the networks when the precision (train.precision, resolved) is bf16."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def layout(self, images: Tensor) -> Tensor:
        """channels_last memory layout when `train.channels_last` asks for it."""
        return images.contiguous(memory_format=torch.channels_last) if self.config.train.channels_last else images

    def apply(self, optimizer: str, loss: Tensor, terms: dict[str, Tensor] | None = None) -> None:
        """One optimiser step on `loss`: refused (NonFiniteLoss naming the term) if it or a term is not finite."""
        check_finite(terms if terms is not None else {optimizer: loss})
        self.optimizers[optimizer].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers[optimizer].step()

    def state(self) -> dict:
        """Networks and optimisers as plain state dicts (what a checkpoint stores)."""
        return {
            "networks": {name: unwrap(net).state_dict() for name, net in self.networks.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
        }

    def load_state(self, state: dict, with_optimizers: bool = True) -> None:
        """Restore `state()`; a checkpoint of another shape is an error naming what differs."""
        missing = sorted(set(self.networks) - set(state["networks"]))
        if missing:
            raise PseudovadError(f"the checkpoint has no weights for {', '.join(missing)}: it was written by another pipeline or version")
        for name, net in self.networks.items():
            try:
                unwrap(net).load_state_dict(state["networks"][name])
            except RuntimeError as error:
                raise PseudovadError(f"the checkpoint's '{name}' weights do not fit this config's network: "
                                     f"{str(error).splitlines()[0]}") from None
        if with_optimizers:
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Wrap the trained networks for data-parallel training (see training/distributed.py)."""
        raise ConfigError(f"pipeline '{self.config.pipeline}' trains in one process only; run it without torchrun")

    # --- what each pipeline does -----------------------------------------------------------------------

    def make_batch(self, clips: ClipDataset, indices: np.ndarray, step: int) -> dict[str, Tensor]:
        """The tensors one training step needs, for the global batch `indices` at `step`."""
        return {"clips": clips.batch(indices)}

    def sample_batch(self, clips: ClipDataset, indices: np.ndarray) -> dict[str, Tensor]:
        """The fixed sample that TensorBoard and the galleries show over training."""
        return {"clips": clips.batch(indices)}

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        raise NotImplementedError

    def predict(self, clips: Tensor) -> Tensor:
        """The pipeline's image of each clip's last frame (its prediction or reconstruction)."""
        raise NotImplementedError

    def score(self, clips: Tensor) -> dict[str, Tensor]:
        """Per-clip scores of the last frame, one entry per declared score, high = normal."""
        raise NotImplementedError

    def deployed_scores(self) -> tuple[str, ...]:
        """The scores `scoring_network` computes, in its column order (what a deployment can use)."""
        return (self.scores[0].name,)

    def scoring_network(self) -> nn.Module:
        """A copy of what computes the deployed scores, as one float32 module from clips
        (B, t+1, C, H, W) in [-1, 1] to (B, len(deployed_scores)) scores: what an export holds (export.py)."""
        raise PseudovadError(f"pipeline '{self.config.pipeline}' cannot be exported yet: it defines no scoring_network "
                             "(the pipelines that score by the PSNR of a predicted frame do)")

    def sample_images(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Named image columns (B, C, H, W) in [-1, 1] for TensorBoard and galleries, from the fixed
        sample `sample_batch` made at the start of training."""
        raise NotImplementedError

    def compile_scoring(self) -> bool:
        """Compile the network that dominates scoring (eval.compile, through trained.compile_if_it_pays);
        whether anything was compiled. Only a pipeline built for scoring may: the compiled network holds
        its weights as constants, so training it afterwards would score with stale weights."""
        return False

    def training_diagnostics(self, held_out: ClipDataset) -> dict:
        """Checks of the trained networks on training frames kept out of training
        (`data.holdout`), for the run's summary: they need no test label, so they may
        explain a test result without being tuned on it. JSON-ready; none by default."""
        return {}


def exportable(network: nn.Module) -> nn.Module:
    """A float32, contiguous copy of a trained network (unwrapped from DDP) for an export: training
    may hold it in bf16 autocast and channels_last, which a traced file should not depend on."""
    return copy.deepcopy(unwrap(network)).float().to(memory_format=torch.contiguous_format)


class CompiledForScoring:
    """`network` under torch.compile (inductor) with its weights frozen in as constants, which lets
    inductor pre-pack them for oneDNN: 8 % faster scoring at the `auto` eval batch on the CPU measured
    (18 % at the former batch of 16; docs/RESULTS.md).

    It always runs batches of `batch` images (a shorter one is padded, a longer one split), so one
    compiled graph serves every call: a video's last, shorter batch would otherwise compile again.
    Compiling happens at the first call; if it fails there (no C++ compiler, an unsupported op), the
    plain network takes over for good, with a warning, so a missing toolchain never stops scoring."""

    def __init__(self, network: nn.Module, batch: int) -> None:
        self.network = network
        self.batch = batch
        self.compiled: Callable[[Tensor], Tensor] | None = torch.compile(network, dynamic=False)

    def __call__(self, images: Tensor) -> Tensor:
        if self.compiled is not None:
            try:
                outputs = [self.run_padded(chunk) for chunk in images.split(self.batch)]
                return outputs[0] if len(outputs) == 1 else torch.cat(outputs)
            except Exception as error:  # noqa: BLE001 - inductor fails in many types; any of them means "run eager"
                first_line = str(error).splitlines()[0] if str(error) else ""
                warnings.warn(f"torch.compile failed ({type(error).__name__}: {first_line}); scoring goes on "
                              "uncompiled (set eval.compile=off to skip the attempt)", RuntimeWarning, stacklevel=2)
                self.compiled = None
        return self.network(images)

    def run_padded(self, chunk: Tensor) -> Tensor:
        import torch._inductor.config as inductor  # noqa: PLC0415 - loaded only where something is compiled

        missing = self.batch - len(chunk)
        padded = torch.cat([chunk, chunk[-1:].expand(missing, *chunk.shape[1:])]) if missing else chunk
        # Inductor reads `freezing` when it compiles, at the first call; torch.compile(options=...) did not
        # freeze here (no speed-up measured), the config patch does.
        with inductor.patch(freezing=True):
            return self.compiled(padded)[: len(chunk)]
