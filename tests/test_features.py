"""The frozen VGG of the perceptual loss: weight loading, input normalisation, gradients, errors."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from pseudovad.errors import PseudovadError
from pseudovad.models.features import VGGFeatures, load_vgg_features, perceptual_loss

# torchvision's `features.N` index and output channels of every conv (its ReLUs and max pools take
# the indices in between).
TORCHVISION_CONVS = {
    16: {
        "indices": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
        "channels": (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512),
    },
    19: {
        "indices": (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34),
        "channels": (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512),
    },
}
# Feature maps of a (2, C, 32, 48) input: relu1_2..relu4_3 for VGG16, relu1_2..relu5_4 for VGG19.
EXPECTED_SHAPES = {
    16: [(2, 64, 32, 48), (2, 128, 16, 24), (2, 256, 8, 12), (2, 512, 4, 6)],
    19: [(2, 64, 32, 48), (2, 128, 16, 24), (2, 256, 8, 12), (2, 512, 4, 6), (2, 512, 2, 3)],
}
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])
HAS_STLPIPS = importlib.util.find_spec("stlpips_pytorch") is not None


def torchvision_state_dict(depth: int, with_classifier: bool = False) -> dict[str, Tensor]:
    """Random tensors with the keys and shapes of `torchvision.models.vgg{depth}().state_dict()`."""
    generator = torch.Generator().manual_seed(depth)
    state = {}
    in_channels = 3
    layout = TORCHVISION_CONVS[depth]
    for index, channels in zip(layout["indices"], layout["channels"]):
        state[f"features.{index}.weight"] = torch.randn(
            channels, in_channels, 3, 3, generator=generator
        ) * math.sqrt(2 / (9 * in_channels))
        state[f"features.{index}.bias"] = torch.randn(channels, generator=generator) * 0.01
        in_channels = channels
    if with_classifier:  # real shapes do not matter: the loader must ignore these keys
        state |= {"classifier.0.weight": torch.zeros(4, 8), "classifier.6.bias": torch.zeros(4)}
    return state


def convs_of(features: VGGFeatures) -> list[nn.Conv2d]:
    return [module for module in features.modules() if isinstance(module, nn.Conv2d)]


def natural_image(size: int = 64) -> Tensor:
    """(1, 1, size, size) in [-1, 1]: smooth shading, a bright disc with a sharp edge, stripes."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    shading = 0.6 * x + 0.3 * y
    disc = (((x - 0.35) ** 2 + (y - 0.6) ** 2) < 0.04).float() * 0.5
    stripes = 0.1 * torch.sin(40 * (x + 0.5 * y))
    return ((shading + disc + stripes).clamp(0, 1) * 2 - 1).view(1, 1, size, size)


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(torchvision_state_dict(16), path)
    return path


@pytest.mark.parametrize(("depth", "with_classifier"), [(16, False), (19, True)])
def test_torchvision_state_dict_maps_every_conv(
    tmp_path: Path, depth: int, with_classifier: bool
) -> None:
    state = torchvision_state_dict(depth, with_classifier)
    path = tmp_path / f"vgg{depth}.pth"
    torch.save(state, path)

    features, description = load_vgg_features(path)

    assert features.depth == depth and not features.antialiased
    assert f"VGG{depth}" in description and str(path) in description
    assert description.endswith(f"(layers {', '.join(features.layer_names)})")
    convs = convs_of(features)
    assert len(convs) == {16: 10, 19: 16}[depth]  # VGG16's conv5 block is not used
    for conv, index in zip(convs, TORCHVISION_CONVS[depth]["indices"], strict=False):
        assert torch.equal(conv.weight, state[f"features.{index}.weight"])
        assert torch.equal(conv.bias, state[f"features.{index}.bias"])
    with torch.no_grad():
        maps = features(torch.rand(2, 3, 32, 48) * 2 - 1)
    assert [tuple(m.shape) for m in maps] == EXPECTED_SHAPES[depth]


def test_imagenet_normalisation_on_constant_image() -> None:
    features = VGGFeatures(16)
    first, second = convs_of(features)[:2]
    with torch.no_grad():  # make relu1_2's first 3 channels pass the normalised RGB input through
        for conv in (first, second):
            conv.weight.zero_()
            conv.bias.zero_()
            for channel in range(3):
                conv.weight[channel, channel, 1, 1] = 1
        gray = torch.full((1, 1, 8, 8), 0.5)  # 0.75 on the [0, 1] scale
        gray_maps = features(gray)[0]
        rgb_maps = features(gray.expand(1, 3, 8, 8))[0]

    expected = (0.75 - IMAGENET_MEAN) / IMAGENET_STD
    assert torch.allclose(gray_maps[0, :3], expected.view(3, 1, 1).expand(3, 8, 8), atol=1e-6)
    assert torch.equal(gray_maps, rgb_maps)


def test_gradient_reaches_prediction_not_the_frozen_vgg(vgg16_file: Path) -> None:
    features, _ = load_vgg_features(vgg16_file)
    features.train()  # a parent module's .train() must not unfreeze or un-eval it
    assert not features.training
    assert not any(parameter.requires_grad for parameter in features.parameters())
    prediction = (torch.rand(2, 1, 32, 32) * 2 - 1).requires_grad_()
    target = (torch.rand(2, 1, 32, 32) * 2 - 1).requires_grad_()

    loss = perceptual_loss(features, prediction, target)
    loss.backward()

    assert loss.ndim == 0 and loss.item() > 0
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert target.grad is None
    assert all(parameter.grad is None for parameter in features.parameters())
    assert perceptual_loss(features, target, target).item() == 0


def test_garbage_file_raises_naming_it(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(PseudovadError, match="garbage.pth"):
        load_vgg_features(garbage)


@pytest.mark.parametrize(
    "state",
    [
        {"encoder.weight": torch.zeros(1)},  # no VGG keys at all
        {k: v for k, v in torchvision_state_dict(16).items() if k != "features.28.weight"},
        {**torchvision_state_dict(16), "features.5.weight": torch.zeros(128, 3, 3, 3)},
        [torch.zeros(1)],  # not a dict
    ],
    ids=["no-vgg-keys", "missing-conv", "wrong-shape", "not-a-dict"],
)
def test_wrong_state_dict_raises_naming_the_file(tmp_path: Path, state: object) -> None:
    path = tmp_path / "wrong_vgg.pth"
    torch.save(state, path)
    with pytest.raises(PseudovadError, match="wrong_vgg.pth"):
        load_vgg_features(path)


def test_missing_file_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PseudovadError, match="absent.pth"):
        load_vgg_features(tmp_path / "absent.pth")


def test_no_weights_and_no_package_refuses_random_features(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "stlpips_pytorch", None)  # find_spec and import now fail
    with pytest.raises(PseudovadError, match=r"perceptual_weights.*pseudovad\[perceptual\]"):
        load_vgg_features()


@pytest.mark.skipif(not HAS_STLPIPS, reason="stlpips-pytorch (the `perceptual` extra) is absent")
def test_stlpips_trunk_loads_trained_weights() -> None:
    features, description = load_vgg_features()

    assert features.depth == 16 and features.antialiased
    assert "stlpips-pytorch 0.0.2" in description
    package = Path(importlib.util.find_spec("stlpips_pytorch").submodule_search_locations[0])
    weights = package / "weights" / "vST0.0" / "vgg_shift_tolerant.pth"
    state = torch.load(weights, map_location="cpu", weights_only=True)
    # ST-LPIPS's input scaling on [-1, 1] is our ImageNet normalisation, rewritten for that range.
    assert torch.allclose(state["scaling_layer.shift"].flatten(), 2 * IMAGENET_MEAN - 1, atol=1e-6)
    assert torch.allclose(state["scaling_layer.scale"].flatten(), 2 * IMAGENET_STD, atol=1e-6)
    file_convs = sorted(
        (int(key.split(".")[2]), key.removesuffix("weight"))
        for key in state
        if key.startswith("net.slice") and key.endswith(".weight")
    )
    for conv, (_, prefix) in zip(convs_of(features), file_convs, strict=False):
        assert torch.equal(conv.weight, state[prefix + "weight"])
        assert torch.equal(conv.bias, state[prefix + "bias"])

    torch.manual_seed(0)
    untrained = VGGFeatures(16, antialiased=True)
    with torch.no_grad():
        trained_maps = features(natural_image())
        untrained_maps = untrained(natural_image())
    for trained, random in zip(trained_maps, untrained_maps, strict=True):
        assert trained.shape == random.shape
        assert (trained - random).abs().mean() > 0.5 * trained.abs().mean()
