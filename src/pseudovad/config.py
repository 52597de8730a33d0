"""Configs are data: nested dataclasses, read from YAML, overridden with `--set key=value`.

Every field has a default, so a YAML file only lists what differs. Unknown keys and wrongly typed
values are errors that name the key, the file and the nearest valid key, because a typo in a
hyper-parameter otherwise costs a whole training run.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pseudovad.errors import ConfigError

PACKAGED_CONFIGS = Path(__file__).parent / "configs"


@dataclass
class DataConfig:
    """Where the frames come from and how clips are cut from them."""

    root: str | None = None
    layout: str | None = None
    labels: str | None = None
    height: int = 128
    width: int = 128
    channels: int = 1
    clip_length: int = 4
    cache_dir: str | None = None


@dataclass
class GeneratorConfig:
    """FFP U-Net: `levels` resolutions, `width` channels at the top level, doubling per level."""

    width: int = 64
    levels: int = 4
    norm: str = "none"
    dropout: float = 0.0


@dataclass
class DiscriminatorConfig:
    """pix2pix PatchGAN; `width` 64 gives FFP's 128-256-512-512 filters."""

    width: int = 64
    norm: str = "batch"


@dataclass
class FlowConfig:
    """The frozen, differentiable flow estimator used by the flow loss."""

    estimator: str = "horn_schunck"  # or "spynet": a pretrained SpyNet whose state dict is `weights`
    levels: int = 3                   # Horn-Schunck pyramid levels
    iterations: int = 20              # Horn-Schunck Jacobi iterations per level
    finest_iterations: int | None = 10  # ... at the full-resolution level (None: `iterations`; see models/flow.py)
    alpha: float | None = None        # Horn-Schunck smoothness (None: the estimator's default)
    weights: str | None = None        # SpyNet weights: .safetensors or a torch.save'd state dict (models/flow.py SpyNet)
    memo_mb: float = 2048             # memory for remembered flows between real frames (0: recompute every step)


@dataclass
class LossWeights:
    """FFP's loss weights; the defaults are the paper's values for Ped2."""

    intensity: float = 1.0
    gradient: float = 1.0
    flow: float = 2.0
    adversarial: float = 0.05


@dataclass
class PseudoConfig:
    """How the pseudo-anomaly generator (branch A) is pushed near, but out of, the normal data.

    objectives: `inverted_flow` (gradient ascent on the flow loss, weight -lambda_flow),
    `hinge_flow` (flow error pushed up to `flow_margin` pixels and no further), `kl` (KL divergence
    between prediction and target maximised with weight lambda_kl, optionally with a perceptual loss
    and dropout), `skip_frames` (LNTRA-style: input frames `skip` apart, the normal next frame as
    target, no negative loss).

    `generator` is branch A's network: the FFP `unet`, or `dcgan` (no skips, see models/dcgan.py).
    `source` is where the classifier's pseudo-anomalies come from: branch A's outputs (`generator`),
    or OGNet's mixtures G_new((G_old(x_i) + G_old(x_j)) / 2) (`ognet_mix`, two-branch only: an OGNet
    generator pair configured by the `ognet` section replaces branch A).
    """

    objective: str = "inverted_flow"
    lambda_flow: float = 0.5
    swap_flow_inputs: bool = False
    flow_margin: float = 1.0
    lambda_kl: float = 0.1
    lambda_perceptual: float = 0.0
    perceptual_weights: str | None = None
    dropout: float = 0.0
    skip: int = 3
    generator: str = "unet"
    source: str = "generator"


@dataclass
class ClassifierConfig:
    """The frame classifier trained from scratch on pseudo-anomalies ([1, 0]) vs normal frames ([0, 1]).

    `input` is what it judges at test time: the normal branch's `prediction` of the frame, or the
    real `frame`. `fused_index` picks which output enters the fused score (both are evaluated).
    """

    width: int = 64
    lr: float = 1e-4
    momentum: float = 0.0
    generator_weight: float = 1.0
    input: str = "prediction"
    fused_index: str = "normal"

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
    weighted `weight_old`, `weight_pseudo`, `weight_new`, `weight_real`.
    """

    width: int = 64
    noise_std: float = 0.1
    reconstruction_weight: float = 0.5
    adversarial_weight: float = 0.5
    old_at: int = 100
    phase2_iterations: int = 100
    finetune_lr: float = 5.0e-5
    weight_old: float = 0.001
    weight_pseudo: float = 0.999
    weight_new: float = 0.9
    weight_real: float = 0.1


@dataclass
class AutoencoderConfig:
    """The MNAD-style autoencoder (no memory) and its gradient-ascent pseudo-anomalies (thesis 4.3.1).

    The network sees frames in `input_range` (`zero_one` or `minus_one_one`, the thesis compared
    both). A pseudo-anomaly is the frame after `ascent_steps` steps of `ascent_step_size` (in that
    range's units) up the sign of the gradient of its reconstruction error. With `pseudo_weight` > 0
    the autoencoder also learns to reconstruct the normal frame from its pseudo-anomaly (LNTRA's
    bounded use of pseudo-anomalies); at 0 it is a plain autoencoder and they are only shown.
    """

    width: int = 64
    levels: int = 4
    input_range: str = "minus_one_one"
    ascent_steps: int = 5
    ascent_step_size: float = 0.02
    pseudo_weight: float = 0.0


@dataclass
class DCGANConfig:
    """The DCGAN generator of `pseudo.generator: dcgan`: generator.width and generator.levels shape
    its convs, and all it passes from the clip to the frame is a `bottleneck`-long vector."""

    bottleneck: int = 100


@dataclass
class TrainConfig:
    """Optimisation schedule. A fixed iteration budget: no checkpoint is picked on test data.

    `precision: bf16` runs the networks under bfloat16 autocast (losses, flow and scores stay in
    float32): on CPUs with AVX512-BF16 and on recent GPUs it is 2-3x faster.
    """

    iterations: int = 2000
    batch_size: int = 4
    lr_generator: float = 1e-4
    lr_discriminator: float = 1e-5
    lr_decay_at: int | None = None
    lr_decay_factor: float = 0.1
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    log_every: int = 20
    sample_every: int = 500
    checkpoint_every: int = 500
    gallery_at: list[int] = field(default_factory=list)
    on_nonfinite: str = "stop"


@dataclass
class EvalConfig:
    """Evaluation options; the FFP protocol itself is fixed (see evaluation.protocol)."""

    batch_size: int = 16
    smoothing_sigma: float = 0.0


@dataclass
class Config:
    """A whole experiment: one pipeline, its data, networks, losses and schedule."""

    pipeline: str = "ffp"
    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    ognet: OGNetConfig = field(default_factory=OGNetConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    dcgan: DCGANConfig = field(default_factory=DCGANConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


CHOICES: dict[str, tuple[str, ...]] = {
    "pipeline": ("ffp", "single_branch", "two_branch", "ognet", "autoencoder"),
    "pseudo.objective": ("inverted_flow", "hinge_flow", "kl", "skip_frames"),
    "pseudo.generator": ("unet", "dcgan"),
    "pseudo.source": ("generator", "ognet_mix"),
    "autoencoder.input_range": ("zero_one", "minus_one_one"),
    "classifier.input": ("prediction", "frame"),
    "classifier.fused_index": ("normal", "abnormal"),
    "data.layout": ("frames", "ucsd", "avenue", "footage"),
    "data.channels": ("1", "3"),
    "generator.norm": ("none", "batch"),
    "discriminator.norm": ("none", "batch"),
    "flow.estimator": ("horn_schunck", "spynet"),
    "train.on_nonfinite": ("stop", "skip"),
    "train.precision": ("fp32", "bf16"),
}


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, minus two traps: a key given twice (silently the last one wins) and
    aliases (`*name`, with which a few lines expand to billions of values)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not accepted here", event.start_mark)
        return super().compose_node(parent, index)


def read_yaml(text: str, source: str) -> Any:
    """Parse YAML text strictly (see _StrictLoader); errors are ConfigErrors naming `source`."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from None


def short_repr(value: Any, limit: int = 60) -> str:
    """repr(value) cut to about `limit` characters, for error messages about values from files."""
    shortener = reprlib.Repr()  # attributes, not keyword arguments: Python 3.10 and 3.11 take none
    shortener.maxstring = shortener.maxother = limit
    shortener.maxlist = shortener.maxdict = shortener.maxtuple = 6
    shortener.maxlevel = 2
    text = shortener.repr(value)
    return text if len(text) <= limit + 10 else text[:limit] + "..."


def _coerce(value: Any, annotation: Any, key: str, source: str) -> Any:
    """Return `value` as the annotated scalar type (int -> float allowed), else raise ConfigError."""
    if typing.get_origin(annotation) is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: '{key}' must be a list, got {type(value).__name__} {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [_coerce(item, item_type, f"{key}[{i}]", source) for i, item in enumerate(value)]
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = typing.get_args(annotation) if union else (annotation,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option in (str, bool) and isinstance(value, option):
            return value
    expected = " or ".join("null" if o is type(None) else o.__name__ for o in options)
    raise ConfigError(f"{source}: '{key}' must be {expected}, got {type(value).__name__} {value!r}")


def _from_dict(cls: type, values: dict, prefix: str, source: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: '{prefix.rstrip('.') or 'top level'}' must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(_unknown_key_message(f"{prefix}{key}", list(hints), prefix, source))
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = _from_dict(hints[key], value, f"{prefix}{key}.", source)
        else:
            kwargs[key] = _coerce(value, hints[key], f"{prefix}{key}", source)
            _check_choice(f"{prefix}{key}", kwargs[key], source)
    return cls(**kwargs)


def _unknown_key_message(key: str, valid: list[str], prefix: str, source: str) -> str:
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(prefix + v for v in valid)}"
    return f"{source}: unknown config key '{key}'{hint}"


def _check_choice(key: str, value: Any, source: str) -> None:
    if key in CHOICES and value is not None and str(value) not in CHOICES[key]:
        raise ConfigError(f"{source}: '{key}' is {value!r}; choose one of {', '.join(CHOICES[key])}")


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A path to a YAML file, or the name of a packaged config such as `synthetic_ffp`."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = PACKAGED_CONFIGS / f"{Path(str(name_or_path)).stem}.yaml"
    if packaged.is_file() and path.suffix in ("", ".yaml") and len(path.parts) <= 2:
        return packaged
    names = sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))
    raise ConfigError(f"config file {path} not found; give a YAML path or one of: {', '.join(names)}")


def parse_override(text: str) -> tuple[str, Any]:
    """`train.iterations=500` -> ("train.iterations", 500); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set train.iterations=500")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def build_config(values: dict, overrides: list[tuple[str, Any]] = (), source: str = "config") -> Config:
    """Merge dotted overrides into `values` and validate the result into a Config.

    The values are validated alone first, so an error names the file it is in, or `--set`."""
    config = _from_dict(Config, values, "", source)
    if not overrides:
        return config
    merged = _deep_copy(values)
    for key, value in overrides:
        node = merged
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: '{part}' is not a section")
        node[parts[-1]] = value
    return _from_dict(Config, merged, "", "--set")


def _deep_copy(values: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in values.items()}


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A config file's values; `base: other.yaml` (beside it, or a packaged name) is read first and
    this file's values are merged over it, so variants list only what they change."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(values).__name__}")
    base = values.pop("base", None)
    if base is None:
        return values
    beside = path.parent / str(base)
    return _merge(_read_yaml(beside if beside.is_file() else resolve_config_path(base), (*seen, path.resolve())), values)


def _merge(base: dict, update: dict) -> dict:
    merged = _deep_copy(base)
    for key, value in update.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def load_config(path: str | Path, overrides: list[tuple[str, Any]] = ()) -> Config:
    """Read a YAML config (a path or a packaged config name) and apply overrides."""
    path = resolve_config_path(path)
    return build_config(_read_yaml(path), overrides, source=str(path))


def without_training_files(config: Config) -> Config:
    """`config` minus the files that only training opens (flow network, perceptual weights).

    A run folder can come from anyone: loading its checkpoint to score or evaluate must not open a
    file its config names. Scoring needs neither file; training takes them from the user's own
    config or `--set`, never from a saved run."""
    stripped = copy.deepcopy(config)
    stripped.flow.estimator, stripped.flow.weights = "horn_schunck", None
    stripped.pseudo.perceptual_weights, stripped.pseudo.lambda_perceptual = None, 0.0
    return stripped


def config_to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def save_config(config: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
