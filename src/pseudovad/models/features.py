"""A frozen VGG feature extractor and the perceptual loss built on it.

The perceptual loss compares prediction and target in the feature space of a pretrained VGG, which
punishes blur that a pixel loss tolerates. torchvision is not a dependency and nothing may download
weights at run time, so the conv stack is defined here and its weights come from one of two files:

* a torchvision-format VGG16/VGG19 state dict supplied by the user (`pseudo.objective.perceptual_weights` of the kl objective);
* otherwise the VGG16 trunk that the `stlpips-pytorch` wheel ships (the `perceptual` extra). That
  trunk is not ImageNet VGG16: ST-LPIPS (Ghildyal & Liu, ECCV 2022) trained it from scratch on the
  BAPPS perceptual-similarity judgements, with anti-aliased pooling, so this module reproduces that
  pooling when it loads those weights.

With neither, loading fails: a randomly initialised VGG would silently turn the loss into noise.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pseudovad.errors import PseudovadError
from pseudovad.models.weights import load_state_dict_file

# ImageNet statistics of [0, 1] RGB images: the normalisation both weight sources were trained on
# (ST-LPIPS's "scaling layer" is the same affine map written for [-1, 1] inputs).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

# 3x3 convolutions per stage; every stage but the first starts by halving the resolution.
_STAGE_CONVS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
_STAGE_CHANNELS = (64, 128, 256, 512, 512)
# Stages whose last ReLU the loss uses: relu1_2..relu4_3 for VGG16 (Johnson et al. 2016),
# relu1_2..relu5_4 for VGG19. Deeper convolutions in a file are validated but not loaded.
_USED_STAGES = {16: 4, 19: 5}

# One convolution's (weight, bias) as read from a file; the bias may be missing (a broken file).
_ConvTensors = tuple[Tensor, Tensor | None]
# Conv weight keys, numbered by position in the file's layer sequence: torchvision's `features.N`,
# and ST-LPIPS's `net.sliceK.N` (N counts through all slices).
_TORCHVISION_CONV = re.compile(r"features\.(\d+)\.weight")
_STLPIPS_CONV = re.compile(r"net\.slice\d+\.(\d+)\.weight")

_STLPIPS_PACKAGE = "stlpips_pytorch"
_STLPIPS_DISTRIBUTION = "stlpips-pytorch"
_STLPIPS_VGG_FILE = Path("weights", "vST0.0", "vgg_shift_tolerant.pth")

_NO_WEIGHTS_HELP = (
    "the perceptual loss needs pretrained VGG weights and none are available (random VGG features "
    "are never used). Either set `pseudo.objective.perceptual_weights: PATH` to a torchvision-format VGG16 or "
    "VGG19 state dict (for example, on a machine with internet: torch.save(torchvision.models."
    "vgg19(weights='IMAGENET1K_V1').state_dict(), PATH)), or install the extra that ships a VGG16 "
    "trunk: pip install 'pseudovad[perceptual]' (stlpips-pytorch==0.0.2)"
)


class VGGFeatures(nn.Module):
    """Frozen VGG16/VGG19 convolutions returning the feature map after each used stage.

    Build it with `load_vgg_features`; a module constructed directly keeps PyTorch's random init.
    `antialiased` selects ST-LPIPS's pooling (stride-1 max pool, then a reflect-padded binomial
    blur with stride 2) instead of VGG's 2x2 max pool, because its trunk was trained that way.
    """

    def __init__(self, depth: int, antialiased: bool = False) -> None:
        super().__init__()
        if depth not in _STAGE_CONVS:
            raise ValueError(f"VGG depth must be 16 or 19, got {depth}")
        self.depth = depth
        self.antialiased = antialiased
        stages = []
        names = []
        in_channels = 3
        used = _USED_STAGES[depth]
        for stage, (convs, channels) in enumerate(zip(_STAGE_CONVS[depth][:used], _STAGE_CHANNELS)):
            layers: list[nn.Module] = []
            for _ in range(convs):
                layers += [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU()]
                in_channels = channels
            stages.append(nn.Sequential(*layers))
            names.append(f"relu{stage + 1}_{convs}")
        self.stages = nn.ModuleList(stages)
        self.layer_names = tuple(names)
        for name, values in (("mean", _IMAGENET_MEAN), ("std", _IMAGENET_STD)):
            self.register_buffer(name, torch.tensor(values).view(1, 3, 1, 1), persistent=False)
        binomial = torch.tensor([1.0, 2.0, 1.0])
        blur = torch.outer(binomial, binomial) / 16
        self.register_buffer("blur", blur.view(1, 1, 3, 3), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        """Stay in eval mode: a fixed loss network must not follow its parent's `.train()`."""
        return super().train(False)

    def forward(self, images: Tensor) -> list[Tensor]:
        """(B, 1 or 3, H, W) frames in [-1, 1] -> one feature map per name in `layer_names`."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected (B, 1 or 3, H, W) images, got shape {tuple(images.shape)}")
        x = images.expand(-1, 3, -1, -1)  # grayscale -> RGB; a no-op on 3 channels
        x = ((x + 1) / 2 - self.mean) / self.std
        outputs = []
        for index, stage in enumerate(self.stages):
            if index > 0:
                x = self._downsample(x)
            x = stage(x)
            outputs.append(x)
        return outputs

    def _downsample(self, x: Tensor) -> Tensor:
        if not self.antialiased:
            return F.max_pool2d(x, 2)
        # ST-LPIPS pads by 2 on each side, not 1: output size is H // 2 + 1, as its trunk expects.
        x = F.pad(F.max_pool2d(x, 2, stride=1), (2, 2, 2, 2), mode="reflect")
        channels = x.shape[1]
        return F.conv2d(x, self.blur.expand(channels, 1, 3, 3), stride=2, groups=channels)


def load_vgg_features(weights: str | Path | None = None) -> tuple[VGGFeatures, str]:
    """The frozen VGG for the perceptual loss and a description of its weights for the results.

    `weights` is a torchvision-format VGG16/VGG19 state dict (the whole-model dict is fine: the
    `classifier.*` keys are ignored). Without it, the ST-LPIPS VGG16 trunk from the `perceptual`
    extra is used; without that either, PseudovadError says how to supply weights.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        features = _build(_ordered_convs(load_state_dict_file(path, "perceptual weights file"), _TORCHVISION_CONV), False, path)
        return features, (
            f"torchvision-format VGG{features.depth} weights from {path} "
            f"(layers {', '.join(features.layer_names)})"
        )
    path = _stlpips_vgg_path()
    features = _build(_ordered_convs(load_state_dict_file(path, "perceptual weights file"), _STLPIPS_CONV), True, path)
    version = importlib.metadata.version(_STLPIPS_DISTRIBUTION)
    return features, (
        f"ST-LPIPS VGG{features.depth} trunk from stlpips-pytorch {version} ({path}): trained from "
        f"scratch on BAPPS with anti-aliased pooling, not ImageNet "
        f"(layers {', '.join(features.layer_names)})"
    )


def perceptual_loss(features: VGGFeatures, prediction: Tensor, target: Tensor) -> Tensor:
    """Mean over the used layers of the L1 distance between feature maps.

    The target's features are computed without a graph: the target is data, not something to train.
    """
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape"
        )
    predicted = features(prediction)
    with torch.no_grad():
        expected = features(target)
    return torch.stack([F.l1_loss(p, e) for p, e in zip(predicted, expected)]).mean()


def _stlpips_vgg_path() -> Path:
    # find_spec locates the package without importing it: its modules import torchvision.
    spec = importlib.util.find_spec(_STLPIPS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PseudovadError(_NO_WEIGHTS_HELP)
    path = Path(spec.submodule_search_locations[0]) / _STLPIPS_VGG_FILE
    if not path.is_file():
        raise PseudovadError(
            f"{_STLPIPS_PACKAGE} is installed but {path} is missing (expected stlpips-pytorch "
            f"0.0.2); {_NO_WEIGHTS_HELP}"
        )
    return path


def _ordered_convs(state: dict[str, Tensor], key: re.Pattern[str]) -> list[_ConvTensors]:
    """(weight, bias) of every conv whose weight key matches `key`, in layer order."""
    positions = {}
    for name in state:
        match = key.fullmatch(name)
        if match:
            positions[int(match.group(1))] = name.removesuffix("weight")
    prefixes = [prefix for _, prefix in sorted(positions.items())]
    return [(state[prefix + "weight"], state.get(prefix + "bias")) for prefix in prefixes]


def _build(convs: list[_ConvTensors], antialiased: bool, source: Path) -> VGGFeatures:
    """A VGGFeatures whose convs hold `convs`, after checking they form a whole VGG16 or VGG19."""
    depth = {sum(counts): depth for depth, counts in _STAGE_CONVS.items()}.get(len(convs))
    if depth is None:
        raise PseudovadError(
            f"perceptual weights file {source} has {len(convs)} VGG convolution layers; expected "
            f"13 (VGG16) or 16 (VGG19), like torchvision's 'features.N.weight'/'features.N.bias'"
        )
    in_channels = 3
    expected = []
    for convs_in_stage, channels in zip(_STAGE_CONVS[depth], _STAGE_CHANNELS):
        for _ in range(convs_in_stage):
            expected.append(((channels, in_channels, 3, 3), (channels,)))
            in_channels = channels
    for index, ((weight, bias), shapes) in enumerate(zip(convs, expected)):
        found = tuple(tuple(t.shape) if isinstance(t, Tensor) else None for t in (weight, bias))
        if found != shapes:
            raise PseudovadError(
                f"perceptual weights file {source}: VGG{depth} convolution {index} has weight/bias "
                f"shapes {found}, expected {shapes}"
            )
    features = VGGFeatures(depth, antialiased)
    targets = [module for module in features.modules() if isinstance(module, nn.Conv2d)]
    with torch.no_grad():
        # zip stops at the last used conv; VGG16's stage 5 is checked above but not needed.
        for conv, (weight, bias) in zip(targets, convs):
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
    return features
