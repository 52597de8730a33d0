"""FFP's training losses (Liu et al., CVPR 2018), each a plain function of tensors.

Frames are in [-1, 1]. The flow loss takes the flow estimator as an argument and keeps the graph
through `flow(previous, prediction)`: detaching it (as popular ports do) makes the term inert.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def intensity_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between the predicted and the real next frame."""
    return torch.mean((prediction - target) ** 2)


def _abs_gradients(image: Tensor) -> tuple[Tensor, Tensor]:
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs()
    return dx, dy


def gradient_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """L1 between the absolute horizontal and vertical image gradients: keeps edges sharp."""
    pred_dx, pred_dy = _abs_gradients(prediction)
    target_dx, target_dy = _abs_gradients(target)
    return torch.mean((pred_dx - target_dx).abs()) + torch.mean((pred_dy - target_dy).abs())


def flow_loss(flow: nn.Module, previous: Tensor, prediction: Tensor, target: Tensor) -> Tensor:
    """mean |F(I_t, prediction) - F(I_t, target)|: the motion into the predicted frame must match.

    Only the target flow is computed without a graph (it does not depend on the generator); the
    gradient reaches the generator through F(previous, prediction).
    """
    with torch.no_grad():
        target_flow = flow(previous, target)
    return torch.mean((flow(previous, prediction) - target_flow).abs())


def lsgan_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """LSGAN: real patches towards 1, generated patches towards 0."""
    return 0.5 * torch.mean((real_scores - 1) ** 2) + 0.5 * torch.mean(fake_scores**2)


def lsgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """LSGAN: the generator wants its patches scored as real (1)."""
    return 0.5 * torch.mean((fake_scores - 1) ** 2)
