"""FFP's training step: each loss reaches the network it should, and nothing else."""

import copy

import numpy as np
import pytest
import torch

from pseudovad.config import build_config
from pseudovad.errors import ConfigError, PseudovadError
from pseudovad.losses import lsgan_discriminator_loss
from pseudovad.training.ffp import FFPPipeline, NonFiniteLoss, split_clip
from pseudovad.training.loop import batch_indices


def tiny_pipeline(**loss) -> FFPPipeline:
    torch.manual_seed(0)
    config = build_config(
        {
            "data": {"height": 32, "width": 32, "channels": 1, "clip_length": 4},
            "generator": {"width": 4, "levels": 3},
            "discriminator": {"width": 4},
            "flow": {"levels": 2, "iterations": 5},
            "loss": loss,
        }
    )
    return FFPPipeline(config, torch.device("cpu"))


def moving_clips(batch: int = 2) -> torch.Tensor:
    """A bright square moving right by one pixel per frame, in [-1, 1]."""
    clips = torch.full((batch, 5, 1, 32, 32), -1.0)
    for t in range(5):
        clips[:, t, :, 5:10, 3 + t : 8 + t] = 1.0
    return clips


def generator_grad_norm(pipeline: FFPPipeline) -> float:
    return sum(p.grad.abs().sum().item() for p in pipeline.generator.parameters() if p.grad is not None)


def test_flow_loss_alone_trains_the_generator():
    pipeline = tiny_pipeline(intensity=0, gradient=0, flow=2, adversarial=0)
    losses = pipeline.train_step({"clips": moving_clips()})
    assert losses["flow"] > 0
    assert generator_grad_norm(pipeline) > 0


def test_zero_flow_weight_sends_no_gradient_and_skips_the_term():
    pipeline = tiny_pipeline(intensity=0, gradient=0, flow=0, adversarial=0)
    losses = pipeline.train_step({"clips": moving_clips()})
    assert "flow" not in losses
    assert generator_grad_norm(pipeline) == 0


def test_discriminator_gradients_come_only_from_its_own_loss():
    pipeline = tiny_pipeline()
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
    pipeline = tiny_pipeline(intensity=0, gradient=0, flow=0, adversarial=1)
    pipeline.train_step({"clips": moving_clips()})
    assert generator_grad_norm(pipeline) > 0


def test_nonfinite_loss_is_named_and_no_step_is_applied():
    pipeline = tiny_pipeline(adversarial=0, flow=0)
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


class TinyFlowNet(torch.nn.Module):
    """Stands in for a pretrained flow network: two images in, a 2-channel field out."""

    def __init__(self, out_channels: int = 2) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, out_channels, 3, padding=1)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([first, second], dim=1))


def export_flow_network(path, out_channels: int = 2):
    torch.manual_seed(1)
    example = (torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32))
    torch.export.save(torch.export.export(TinyFlowNet(out_channels), example), path)
    return path


def exported_flow_pipeline(weights) -> FFPPipeline:
    torch.manual_seed(0)
    config = build_config(
        {
            "data": {"height": 32, "width": 32, "channels": 1, "clip_length": 4},
            "generator": {"width": 4, "levels": 3},
            "discriminator": {"width": 4},
            "flow": {"estimator": "exported", "weights": str(weights)},
            "loss": {"intensity": 0, "gradient": 0, "flow": 2, "adversarial": 0},
        }
    )
    return FFPPipeline(config, torch.device("cpu"))


def test_a_user_supplied_exported_flow_network_trains_the_generator_and_stays_frozen(tmp_path):
    pipeline = exported_flow_pipeline(export_flow_network(tmp_path / "flow.pt2"))
    frozen_weights = [p.detach().clone() for p in pipeline.flow.parameters()]
    losses = pipeline.train_step({"clips": moving_clips()})
    assert losses["flow"] > 0 and generator_grad_norm(pipeline) > 0
    assert all(not p.requires_grad and p.grad is None for p in pipeline.flow.parameters())
    assert all(torch.equal(a, b) for a, b in zip(frozen_weights, pipeline.flow.parameters()))


def test_exported_flow_network_errors_name_the_file(tmp_path):
    with pytest.raises(PseudovadError, match=r"flow network .*missing\.pt2 not found \(flow\.weights\)"):
        exported_flow_pipeline(tmp_path / "missing.pt2")
    (tmp_path / "junk.pt2").write_bytes(b"not a program")
    with pytest.raises(PseudovadError, match=r"junk\.pt2: not a torch\.export program"):
        exported_flow_pipeline(tmp_path / "junk.pt2")
    pipeline = exported_flow_pipeline(export_flow_network(tmp_path / "three.pt2", out_channels=3))
    with pytest.raises(PseudovadError, match=r"three\.pt2 returned \(2, 3, 32, 32\) .* expected flow of shape \(2, 2, 32, 32\)"):
        pipeline.train_step({"clips": moving_clips()})
    with pytest.raises(ConfigError, match="needs flow.weights"):
        exported_flow_pipeline("")


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
            }
        )
        pipeline = FFPPipeline(config, torch.device("cpu"))
        for _ in range(3):  # the same clips each step: steps 2 and 3 hit the memo
            pipeline.train_step({"clips": moving_clips()})
        runs.append([p.detach().clone() for p in pipeline.generator.parameters()])
        assert len(pipeline.flow.memo) == (0 if memo_mb == 0 else 1)  # both clips hold the same frames
    assert all(torch.equal(a, b) for a, b in zip(*runs))
