"""What a config holds: nested dataclasses, each field with its default and its allowed range.

Every field has a default, so a YAML file lists only what differs. The range of every value sits
beside its field (`option(..., at_least=1)`), and `loading.py` checks each value against it when
the config is read, before any data is touched: a typo or an impossible value costs an error
message, not a training run. Sections whose fields depend on a choice (the predictor's objective,
the pseudo-anomaly sources) are `component` fields: their `name` picks a registered class, whose
own `Options` dataclass validates the rest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any

from pseudovad.registry import OBJECTIVES, Registry

LAYOUTS = ("frames", "ucsd", "avenue", "footage")  # the dataset layouts data/layouts.py reads (`data.layout`, --layout)


def option(default: Any = dataclasses.MISSING, *, factory: Any = None, at_least: float | None = None,
           above: float | None = None, at_most: float | None = None, below: float | None = None,
           choices: tuple[str, ...] | None = None, pattern: str | None = None, file: bool = False) -> Any:
    """A dataclass field with its allowed values: bounds (inclusive `at_least` / `at_most`, exclusive
    `above` / `below`), `choices`, a regular expression the whole text must match (`pattern`), or
    `file` (a path that only training opens; see loading.without_training_files)."""
    limits = {"at_least": at_least, "above": above, "at_most": at_most, "below": below, "choices": choices,
              "pattern": pattern, "file": file or None}
    metadata = {key: value for key, value in limits.items() if value is not None}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Chosen:
    """Marks a field (`Annotated[Any, Chosen(REGISTRY)]`) whose value is the Options of the registered
    class its `name` names."""

    registry: Registry


def component(registry: Registry, name: str, **values: Any) -> Any:
    """The Options of `name` in `registry` with `values` (a default for a component field)."""
    return registry.options(name)(name=name, **values)


def chosen_default(registry: Registry, name: str) -> Any:
    return option(factory=lambda: component(registry, name))


@dataclass
class DataConfig:
    """Where the frames come from and how clips are cut from them."""

    root: str | None = None
    layout: str | None = option(None, choices=LAYOUTS)
    labels: str | None = None
    height: int = option(128, at_least=8, at_most=4096)
    width: int = option(128, at_least=8, at_most=4096)
    channels: int = option(1, choices=("1", "3"))
    clip_length: int = option(4, at_least=1, at_most=64)
    cache_dir: str | None = None
    # The last `holdout` fraction of each training video (at least one clip) is kept out of training:
    # the run calibrates its alert threshold on these normal frames it has never seen. 0 trains on every
    # frame, as the benchmarks' protocol does, and calibrates on training frames (optimistic, and said so).
    holdout: float = option(0.0, at_least=0.0, at_most=0.5)


@dataclass
class GeneratorConfig:
    """FFP U-Net: `levels` resolutions, `width` channels at the top level, doubling per level."""

    width: int = option(64, at_least=1, at_most=1024)
    levels: int = option(4, at_least=1, at_most=8)
    norm: str = option("none", choices=("none", "batch"))
    dropout: float = option(0.0, at_least=0.0, below=1.0)


@dataclass
class DiscriminatorConfig:
    """pix2pix PatchGAN; `width` 64 gives FFP's 128-256-512-512 filters."""

    width: int = option(64, at_least=1, at_most=1024)
    norm: str = option("batch", choices=("none", "batch"))


@dataclass
class FlowConfig:
    """The frozen, differentiable flow estimator used by the flow loss."""

    estimator: str = option("horn_schunck", choices=("horn_schunck", "spynet"))  # spynet: pretrained, from `weights`
    levels: int = option(3, at_least=1, at_most=8)                  # Horn-Schunck pyramid levels
    iterations: int = option(20, at_least=1, at_most=1000)          # Horn-Schunck Jacobi iterations per level
    finest_iterations: int | None = option(10, at_least=1, at_most=1000)  # ... at full resolution (None: `iterations`)
    alpha: float | None = option(None, above=0.0)                   # Horn-Schunck smoothness (None: the estimator's default)
    weights: str | None = option(None, file=True)                   # SpyNet weights: .safetensors or a torch.save'd state dict
    memo_mb: float = option(2048, at_least=0.0)                     # memory for remembered flows between real frames (0: off)


@dataclass
class LossWeights:
    """FFP's loss weights; the defaults are the paper's values for Ped2."""

    intensity: float = option(1.0, at_least=0.0)
    gradient: float = option(1.0, at_least=0.0)
    flow: float = option(2.0, at_least=0.0)
    adversarial: float = option(0.05, at_least=0.0)


@dataclass
class PseudoConfig:
    """The thesis design's pseudo-anomaly generator (branch A of the single- and two-branch pipelines).

    `objective` keeps it near, but out of, the normal data (registered objectives: inverted_flow,
    hinge_flow, kl, skip_frames; see training/objectives.py). `generator` is branch A's network: the
    FFP `unet`, or `dcgan` (no skips, see models/dcgan.py); `dropout` applies after the U-Net's convs (not the DCGAN's).
    `source` is where the classifier's pseudo-anomalies come from: branch A's outputs (`generator`),
    or OGNet's mixtures G_new((G_old(x_i) + G_old(x_j)) / 2) (`ognet_mix`, two-branch only: an OGNet
    generator pair configured by the `ognet` section replaces branch A).
    """

    objective: Annotated[Any, Chosen(OBJECTIVES)] = chosen_default(OBJECTIVES, "inverted_flow")
    dropout: float = option(0.0, at_least=0.0, below=1.0)
    generator: str = option("unet", choices=("unet", "dcgan"))
    source: str = option("generator", choices=("generator", "ognet_mix"))


@dataclass
class ClassifierConfig:
    """The frame classifier trained from scratch on pseudo-anomalies ([1, 0]) vs normal frames ([0, 1]).

    `input` is what it judges at test time: the normal branch's `prediction` of the frame, or the
    real `frame`. `fused_index` picks which output enters the fused score (both are evaluated).
    """

    width: int = option(64, at_least=1, at_most=1024)
    lr: float = option(1e-4, above=0.0, at_most=10.0)
    momentum: float = option(0.0, at_least=0.0, below=1.0)
    generator_weight: float = option(1.0, at_least=0.0)
    input: str = option("prediction", choices=("prediction", "frame"))
    fused_index: str = option("normal", choices=("normal", "abnormal"))

    @property
    def fused_score(self) -> str:
        """The score name of the classifier output that enters the fused score."""
        return "classifier" if self.fused_index == "normal" else "classifier_abnormal"


@dataclass
class OGNetConfig:
    """OGNet (Zaheer et al., CVPR 2020); the loss weights and `finetune_lr` are the authors' values.

    Phase 1 trains an adversarial denoising autoencoder (`width` 64 gives the paper's 64-512 filters)
    for the budget minus the last `phase2_iterations` steps; G_old is a copy of the generator taken
    after `old_at` steps. Phase 2 fine-tunes only the discriminator (Adam `finetune_lr`) on bad
    examples G_old(x) and G_new((G_old(x_i) + G_old(x_j)) / 2) and good examples G_new(x) and x,
    weighted `weight_old`, `weight_pseudo`, `weight_new`, `weight_real`. Phase 1's noisy input is
    clamped to [-1, 1], as the authors' `gaussian` does.

    `patches` > 0: G and D see `patches` x `patches` squares of frames kept at data.height x
    data.width, on the fixed grid that covers the frame (data/patches.py). A training sample is one
    grid patch of a frame, drawn anew at each step; a frame's score is the minimum over its patches
    of D(G(patch)), high = normal, so the most anomalous patch decides (fixed before any result;
    the authors' code holds no rule for it). 0: whole frames.
    """

    width: int = option(64, at_least=1, at_most=1024)
    patches: int = option(0, at_least=0, at_most=4096)
    noise_std: float = option(0.1, at_least=0.0)
    reconstruction_weight: float = option(0.5, at_least=0.0)
    adversarial_weight: float = option(0.5, at_least=0.0)
    old_at: int = option(100, at_least=1)
    phase2_iterations: int = option(100, at_least=0)
    finetune_lr: float = option(5.0e-5, above=0.0, at_most=10.0)
    weight_old: float = option(0.001, at_least=0.0)
    weight_pseudo: float = option(0.999, at_least=0.0)
    weight_new: float = option(0.9, at_least=0.0)
    weight_real: float = option(0.1, at_least=0.0)


@dataclass
class AutoencoderConfig:
    """The MNAD-style autoencoder (no memory) and its gradient-ascent pseudo-anomalies (thesis 4.3.1).

    The network sees frames in `input_range` (`zero_one` or `minus_one_one`, the thesis compared
    both). A pseudo-anomaly is the frame after `ascent_steps` steps of `ascent_step_size` (in that
    range's units) up the sign of the gradient of its reconstruction error. With `pseudo_weight` > 0
    the autoencoder also learns to reconstruct the normal frame from its pseudo-anomaly (LNTRA's
    bounded use of pseudo-anomalies); at 0 it is a plain autoencoder and they are only shown.
    """

    width: int = option(64, at_least=1, at_most=1024)
    levels: int = option(4, at_least=1, at_most=8)
    input_range: str = option("minus_one_one", choices=("zero_one", "minus_one_one"))
    ascent_steps: int = option(5, at_least=0, at_most=1000)
    ascent_step_size: float = option(0.02, at_least=0.0)
    pseudo_weight: float = option(0.0, at_least=0.0)


@dataclass
class DCGANConfig:
    """The DCGAN generator of `pseudo.generator: dcgan`: generator.width and generator.levels shape
    its convs, and all it passes from the clip to the frame is a `bottleneck`-long vector."""

    bottleneck: int = option(100, at_least=1, at_most=100000)


@dataclass
class TrainConfig:
    """Optimisation schedule. A fixed iteration budget: no checkpoint is picked on test data.

    `precision: bf16` runs the networks under bfloat16 autocast (losses, flow and scores stay in
    float32): on CPUs with AVX512-BF16 or AMX and on recent GPUs it is 2-4x faster; elsewhere it is
    emulated and slower. `auto` picks bf16 exactly where the hardware has it (training/hardware.py).
    `compile` compiles the training step's networks with torch.compile (inductor), in the FFP-based
    pipelines only (FFP, learning not to predict, and the thesis's pipelines, whose branches are FFP
    pipelines); scoring has its own switch, `eval.compile`.
    """

    iterations: int = option(2000, at_least=1)
    batch_size: int = option(4, at_least=1, at_most=4096)
    lr_generator: float = option(1e-4, above=0.0, at_most=10.0)
    lr_discriminator: float = option(1e-5, above=0.0, at_most=10.0)
    lr_decay_at: int | None = option(None, at_least=0)
    lr_decay_factor: float = option(0.1, above=0.0, at_most=1.0)
    seed: int = option(0, at_least=0, at_most=2**32 - 1)
    device: str = option("auto", pattern=r"auto|cpu|mps|cuda(:\d+)?")
    precision: str = option("auto", choices=("auto", "fp32", "bf16"))
    compile: bool = False
    channels_last: bool = False
    log_every: int = option(20, at_least=1)
    sample_every: int = option(500, at_least=1)
    checkpoint_every: int = option(500, at_least=1)
    # Also save once this many minutes have passed since the last checkpoint: at 7 s a step (256 px on a CPU
    # without bf16) 500 steps are an hour, all of it lost to a kill. Saving changes nothing that is learned.
    checkpoint_minutes: float = option(10.0, above=0.0)
    gallery_at: list[int] = option(factory=list, at_least=1)
    on_nonfinite: str = option("stop", choices=("stop", "skip"))


@dataclass
class EvalConfig:
    """Evaluation and scoring options; the FFP protocol itself is fixed (see evaluation.protocol).

    `compile` compiles the network that scoring runs (torch.compile, inductor, its weights frozen in as
    constants), in runs of the `ffp` pipeline only, whatever their objective (the thesis's pipelines,
    OGNet and the autoencoder score uncompiled whatever it says; `on` then says so). On the AMD EPYC that made 174
    frames/s of 161 at 128 px, after a warm-up of several
    seconds that a job of a few thousand frames does not earn back (docs/RESULTS.md). So `auto` compiles for
    jobs of at least `training.trained.COMPILE_PAYS_FROM` frames and for open-ended streams (`live`), `on` always,
    `off` never. Where compiling fails (no C++ compiler), scoring goes on uncompiled, with a warning.

    `batch_size` is the number of frames scored per call. `auto` (training.hardware.scoring_batch_size)
    takes on a CPU as many frames as make 128x128x4 pixels: larger batches spill the U-Net's activations
    out of the caches, and at 128 px batch 4 scored ~166 frames/s where batch 16 scored ~135 (AMD EPYC,
    docs/RESULTS.md). On a GPU it takes 32. It changes speed only, never a score.
    """

    batch_size: int | str = option("auto", at_least=1, at_most=4096, pattern="auto")
    compile: str = option("auto", choices=("auto", "on", "off"))
    smoothing_sigma: float = option(0.0, at_least=0.0, at_most=1000.0)


@dataclass
class Config:
    """A whole experiment: one pipeline, its data, networks, losses and schedule.

    A pipeline reads only some sections (`Pipeline.sections`); a run's saved config holds those."""

    pipeline: str = "ffp"
    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    objective: Annotated[Any, Chosen(OBJECTIVES)] = chosen_default(OBJECTIVES, "ffp")
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    ognet: OGNetConfig = field(default_factory=OGNetConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    dcgan: DCGANConfig = field(default_factory=DCGANConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    # Sections every pipeline reads; Pipeline.sections adds its own.
    COMMON = ("pipeline", "data", "train", "eval")
