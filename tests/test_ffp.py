"""FFP's training step: each loss reaches the network it should, and nothing else."""

import copy
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pseudovad.config import build_config
from pseudovad.errors import ConfigError, PseudovadError
from pseudovad.losses import lsgan_discriminator_loss
from pseudovad.models.flow import SpyNet
from pseudovad.training.base import NonFiniteLoss
from pseudovad.training.ffp import FFPPipeline, split_clip
from pseudovad.training.loop import batch_indices

from helpers import moving_clips, tiny_pipeline


def ffp(**loss) -> FFPPipeline:
    return tiny_pipeline("ffp", loss=loss)


def generator_grad_norm(pipeline: FFPPipeline) -> float:
    return sum(p.grad.abs().sum().item() for p in pipeline.generator.parameters() if p.grad is not None)


@pytest.mark.parametrize("term", ["intensity", "gradient", "flow", "adversarial"])
def test_each_loss_term_alone_trains_the_generator(term):
    """One of FFP's four weights non-zero at a time: that term alone sends the generator a gradient
    (a term computed on a detached prediction would be logged and train nothing)."""
    pipeline = ffp(**{name: (2 if name == term else 0) for name in ("intensity", "gradient", "flow", "adversarial")})
    losses = pipeline.train_step({"clips": moving_clips()})
    assert losses[term] > 0
    assert generator_grad_norm(pipeline) > 0


def test_zero_flow_weight_sends_no_gradient_and_skips_the_term():
    pipeline = ffp(intensity=0, gradient=0, flow=0, adversarial=0)
    losses = pipeline.train_step({"clips": moving_clips()})
    assert "flow" not in losses
    assert generator_grad_norm(pipeline) == 0


def test_discriminator_gradients_come_only_from_its_own_loss():
    pipeline = ffp()
    clips = moving_clips()
    # Expected: D's loss alone, on copies of the networks as they are before the step.
    generator = copy.deepcopy(pipeline.generator)
    discriminator = copy.deepcopy(pipeline.discriminator)
    inputs, target = split_clip(clips)
    prediction = generator(inputs).detach()
    lsgan_discriminator_loss(discriminator(target), discriminator(prediction)).backward()
    expected = [p.grad.clone() for p in discriminator.parameters()]

    pipeline.train_step({"clips": clips})
    for got, want in zip((p.grad for p in pipeline.discriminator.parameters()), expected):
        torch.testing.assert_close(got, want)
    assert all(p.requires_grad for p in pipeline.discriminator.parameters())


def test_adversarial_term_reaches_the_generator():
    pipeline = ffp(intensity=0, gradient=0, flow=0, adversarial=1)
    pipeline.train_step({"clips": moving_clips()})
    assert generator_grad_norm(pipeline) > 0


def test_nonfinite_loss_is_named_and_no_step_is_applied():
    pipeline = ffp(adversarial=0, flow=0)
    before = [p.clone() for p in pipeline.generator.parameters()]
    clips = moving_clips()
    clips[0, -1, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLoss, match="intensity"):
        pipeline.train_step({"clips": clips})
    for old, new in zip(before, pipeline.generator.parameters()):
        torch.testing.assert_close(old, new)


def test_batches_cover_every_clip_once_per_epoch_and_are_reproducible():
    seen = np.concatenate([batch_indices(10, 3, seed=1, step=s) for s in range(3)])
    assert len(set(seen.tolist())) == 9
    np.testing.assert_array_equal(batch_indices(10, 3, 1, 4), batch_indices(10, 3, 1, 4))
    assert not np.array_equal(batch_indices(10, 3, 1, 0), batch_indices(10, 3, 1, 3))


def spynet_weights(path, port_keys: bool = True):
    """Random SpyNet weights saved as a plain state dict, in the PyTorch port's key names or ours."""
    torch.manual_seed(1)
    state = SpyNet().state_dict()
    if port_keys:
        state = {re.sub(r"levels\.(\d+)\.(\d+)\.", r"moduleBasic.\1.moduleBasic.\2.", k): v * 0.1 for k, v in state.items()}
    torch.save(state, path)
    return path


def spynet_pipeline(weights) -> FFPPipeline:
    torch.manual_seed(0)
    config = build_config(
        {
            "data": {"height": 32, "width": 32, "channels": 1, "clip_length": 4},
            "generator": {"width": 4, "levels": 3},
            "discriminator": {"width": 4},
            "flow": {"estimator": "spynet", "weights": str(weights)},
            "train": {"precision": "fp32"},
            "loss": {"intensity": 0, "gradient": 0, "flow": 2, "adversarial": 0},
        }
    )
    return FFPPipeline(config, torch.device("cpu"))


def test_spynet_weights_train_the_generator_and_stay_frozen(tmp_path):
    pipeline = spynet_pipeline(spynet_weights(tmp_path / "network-sintel-final.pytorch"))
    frozen_weights = [p.detach().clone() for p in pipeline.flow.parameters()]
    losses = pipeline.train_step({"clips": moving_clips()})
    assert losses["flow"] > 0 and generator_grad_norm(pipeline) > 0
    assert all(not p.requires_grad and p.grad is None for p in pipeline.flow.parameters())
    assert all(torch.equal(a, b) for a, b in zip(frozen_weights, pipeline.flow.parameters()))


def test_spynet_reads_safetensors_with_its_own_keys(tmp_path):
    from safetensors.torch import save_file

    save_file(SpyNet().state_dict(), tmp_path / "spynet.safetensors")
    flow = SpyNet(tmp_path / "spynet.safetensors")
    assert flow(torch.zeros(2, 1, 40, 24), torch.zeros(2, 1, 40, 24)).shape == (2, 2, 40, 24)


def test_flow_weights_errors_name_the_file(tmp_path):
    with pytest.raises(PseudovadError, match=r"flow\.weights\) .*missing\.pth not found"):
        spynet_pipeline(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a state dict")
    with pytest.raises(PseudovadError, match=r"junk\.pth: cannot read the SpyNet weights"):
        spynet_pipeline(tmp_path / "junk.pth")
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(PseudovadError, match=r"other\.pth: not SpyNet weights"):
        spynet_pipeline(tmp_path / "other.pth")
    with pytest.raises(ConfigError, match="needs flow.weights"):
        spynet_pipeline("")


def test_a_crafted_torch_export_archive_is_refused_before_anything_reads_it(tmp_path):
    """A .pt2 can run code when torch.export loads it (pickled weights, guard code); it is refused by name."""
    archive = tmp_path / "flow.pt2"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("flow/data/weights/weight_0", pickle.dumps(Payload(tmp_path / "payload_ran")))
    with pytest.raises(PseudovadError, match=r"flow\.pt2: torch\.export \(\.pt2\) files are refused"):
        spynet_pipeline(archive)
    assert not (tmp_path / "payload_ran").exists()


class Payload:
    """Creates a file when unpickled: stands in for code an attacker ships."""

    def __init__(self, path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_pickled_payload_in_a_weights_file_never_runs(tmp_path):
    torch.save({"levels.0.0.weight": Payload(tmp_path / "payload_ran")}, tmp_path / "evil.pth")
    with pytest.raises(PseudovadError, match=r"evil\.pth: cannot read the SpyNet weights"):
        spynet_pipeline(tmp_path / "evil.pth")
    assert not (tmp_path / "payload_ran").exists()


def test_memoised_target_flow_changes_no_parameter():
    """Training with the memo of the real frames' flows is bit-identical to recomputing them."""
    runs = []
    for memo_mb in (0, 64):
        torch.manual_seed(0)
        config = build_config(
            {
                "data": {"height": 32, "width": 32, "channels": 1, "clip_length": 4},
                "generator": {"width": 4, "levels": 3},
                "discriminator": {"width": 4},
                "flow": {"levels": 2, "iterations": 5, "memo_mb": memo_mb},
                "train": {"precision": "fp32"},
            }
        )
        pipeline = FFPPipeline(config, torch.device("cpu"))
        for _ in range(3):  # the same clips each step: steps 2 and 3 hit the memo
            pipeline.train_step({"clips": moving_clips()})
        runs.append([p.detach().clone() for p in pipeline.generator.parameters()])
        assert len(pipeline.flow.memo) == (0 if memo_mb == 0 else 1)  # both clips hold the same frames
    assert all(torch.equal(a, b) for a, b in zip(*runs))
