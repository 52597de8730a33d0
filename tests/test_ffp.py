"""FFP's training step: each loss reaches the network it should, and nothing else."""

import copy

import numpy as np
import pytest
import torch

from pseudovad.config import build_config
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
