"""The autoencoder baseline: gradient ascent pushes frames away from the input and up the
reconstruction error, in either input range, and the pipeline trains and evaluates end to end."""

import copy
import json

import pytest
import torch

from pseudovad.cli import main
from pseudovad.config import build_config
from pseudovad.losses import intensity_loss
from pseudovad.training.autoencoder import AutoencoderPipeline

from helpers import moving_clips


def tiny_autoencoder(input_range: str, **options) -> AutoencoderPipeline:
    torch.manual_seed(0)
    config = build_config(
        {
            "pipeline": "autoencoder",
            "data": {"height": 32, "width": 32, "channels": 1},
            "autoencoder": {"width": 4, "levels": 3, "input_range": input_range, "ascent_step_size": 0.05, **options},
            "train": {"precision": "fp32"},
        }
    )
    return AutoencoderPipeline(config, torch.device("cpu"))


@pytest.mark.parametrize("input_range", ["zero_one", "minus_one_one"])
def test_gradient_ascent_moves_away_from_the_input_as_steps_increase(input_range):
    model = tiny_autoencoder(input_range)
    clips = moving_clips(2) * 0.6  # grey levels: a pixel already at the range's edge is clamped back
    for _ in range(3):
        model.train_step({"frames": clips[:, -1]})
    images = model.to_input(clips[:, -1])
    low = 0.0 if input_range == "zero_one" else -1.0
    distances, errors = [], []
    for steps in (0, 1, 2, 4):
        moved = model.gradient_ascent(images, steps)
        assert moved.min() >= low and moved.max() <= 1.0
        distances.append((moved - images).abs().mean().item())
        with torch.no_grad():
            errors.append(intensity_loss(model.reconstruct(moved), moved).item())
    assert distances[0] == 0
    assert distances == sorted(distances) and len(set(distances)) == 4, distances
    assert errors == sorted(errors) and len(set(errors)) == 4, errors


@pytest.mark.parametrize("input_range", ["zero_one", "minus_one_one"])
def test_both_input_ranges_train_score_and_show_samples(input_range):
    model = tiny_autoencoder(input_range, pseudo_weight=1.0, ascent_steps=2)
    clips = moving_clips(2) * 0.6
    losses = model.train_step({"frames": clips[:, -1]})
    assert set(losses) == {"autoencoder", "reconstruction", "pseudo"}
    assert losses["autoencoder"] == pytest.approx(losses["reconstruction"] + losses["pseudo"], rel=1e-5)
    assert torch.isfinite(model.score(clips)["psnr"]).all()
    images = model.sample_images({"clips": clips})
    assert list(images) == ["input", "reconstruction", "pseudo-anomaly"]
    for image in images.values():
        assert image.shape == (2, 1, 32, 32) and image.min() >= -1 and image.max() <= 1
    assert not torch.equal(images["pseudo-anomaly"], images["input"])


def test_the_pseudo_term_reconstructs_the_normal_frame_from_the_pseudo_anomaly(monkeypatch):
    """The baseline's pseudo-anomaly term: the reconstruction of the ascended image is compared with the
    normal image (not with itself), and weighted by pseudo_weight."""
    model = tiny_autoencoder("minus_one_one", pseudo_weight=0.3, ascent_steps=2)
    frames = moving_clips(2)[:, -1] * 0.6
    images = model.to_input(frames)
    pseudo = images.flip(-1)  # a fixed "ascended" image, far from the normal one
    monkeypatch.setattr(model, "gradient_ascent", lambda batch: pseudo)
    before = copy.deepcopy(model)
    before.autoencoder.train()
    with torch.no_grad():
        expected = intensity_loss(before.reconstruct(pseudo), images).item()
    losses = model.train_step({"frames": frames})
    assert losses["pseudo"] == pytest.approx(expected, rel=1e-5)
    assert losses["autoencoder"] == pytest.approx(losses["reconstruction"] + 0.3 * losses["pseudo"], rel=1e-5)


def test_gradient_ascent_leaves_the_autoencoder_untouched():
    model = tiny_autoencoder("minus_one_one")
    before = {name: value.clone() for name, value in model.autoencoder.state_dict().items()}
    model.gradient_ascent(moving_clips(2)[:, -1], 3)
    assert all(p.grad is None for p in model.autoencoder.parameters())
    for name, value in model.autoencoder.state_dict().items():
        torch.testing.assert_close(value, before[name], msg=name)  # BatchNorm statistics included


def test_train_then_evaluate_through_the_cli(tmp_path, tiny_data):
    data = tiny_data
    run = tmp_path / "run"
    tiny = ["--set", "data.height=32", "--set", "data.width=32", "--set", "autoencoder.width=4", "--set", "autoencoder.levels=3"]
    assert main(["train", "synthetic_autoencoder", "--data", str(data), "--out", str(run), *tiny, "--iterations", "2", "--evaluate"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert set(results["auc"]) == {"psnr"}
