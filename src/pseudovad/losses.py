"""FFP's training losses (Liu et al., CVPR 2018), each a plain function of tensors.

Frames are in [-1, 1]. The flow loss takes the flow estimator as an argument and keeps the graph
through `flow(previous, prediction)`: detaching it (as popular ports do) makes the term inert.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pseudovad.models.flow import MemoisedFlow


def _mean(values: Tensor, per_sample: bool) -> Tensor:
    """The mean over everything, or (per_sample) one mean per sample of the batch: (B,)."""
    return values.flatten(1).mean(dim=1) if per_sample else torch.mean(values)


def masked_mean(per_sample: Tensor, mask: Tensor) -> Tensor:
    """The mean of per-sample losses over the samples where `mask` is true (0 where none is): the
    graph is kept even for an empty mask, so every data-parallel process runs the same backward."""
    mask = mask.to(per_sample.dtype)
    return (per_sample * mask).sum() / mask.sum().clamp(min=1)


def intensity_loss(prediction: Tensor, target: Tensor, per_sample: bool = False) -> Tensor:
    """Mean squared error between the predicted and the real next frame."""
    return _mean((prediction - target) ** 2, per_sample)


def _abs_gradients(image: Tensor) -> tuple[Tensor, Tensor]:
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs()
    return dx, dy


def gradient_loss(prediction: Tensor, target: Tensor, per_sample: bool = False) -> Tensor:
    """L1 between the absolute horizontal and vertical image gradients: keeps edges sharp."""
    pred_dx, pred_dy = _abs_gradients(prediction)
    target_dx, target_dy = _abs_gradients(target)
    return _mean((pred_dx - target_dx).abs(), per_sample) + _mean((pred_dy - target_dy).abs(), per_sample)


def flow_loss(flow: MemoisedFlow, previous: Tensor, prediction: Tensor, target: Tensor) -> Tensor:
    """mean |F(I_t, prediction) - F(I_t, target)|: the motion into the predicted frame must match.

    Only the target flow is computed without a graph (it does not depend on the generator, so it
    is also memoised); the gradient reaches the generator through F(previous, prediction).
    """
    return torch.mean((flow(previous, prediction) - flow.reference(previous, target)).abs())


def lsgan_discriminator_loss(real_scores: Tensor, fake_scores: Tensor, per_sample: bool = False) -> Tensor:
    """LSGAN: real patches towards 1, generated patches towards 0."""
    return 0.5 * _mean((real_scores - 1) ** 2, per_sample) + 0.5 * _mean(fake_scores**2, per_sample)


def lsgan_generator_loss(fake_scores: Tensor, per_sample: bool = False) -> Tensor:
    """LSGAN: the generator wants its patches scored as real (1)."""
    return 0.5 * _mean((fake_scores - 1) ** 2, per_sample)


def directed_flow_loss(flow: MemoisedFlow, previous: Tensor, prediction: Tensor, target: Tensor, swap: bool) -> Tensor:
    """The flow loss with the flow inputs in FFP's order, or swapped (from the frame to I_t)."""
    if not swap:
        return flow_loss(flow, previous, prediction, target)
    return torch.mean((flow(prediction, previous) - flow.reference(target, previous)).abs())


def hinge_loss(error: Tensor, margin: float | Tensor) -> Tensor:
    """Zero once `error` reaches `margin`: pushes an error up (a prediction out of the normal motion,
    away from an abnormal continuation), but only so far, unlike plain gradient ascent which can run
    away or drift back. Per element, so per sample where `error` is."""
    return torch.relu(margin - error)


def pixel_kl_divergence(prediction: Tensor, target: Tensor) -> Tensor:
    """KL(P_target || P_prediction), each frame channel read as a distribution over its pixels
    (softmax of the pixel values), averaged over batch and channels."""
    target_log = torch.log_softmax(target.flatten(2), dim=-1)
    prediction_log = torch.log_softmax(prediction.flatten(2), dim=-1)
    return torch.sum(target_log.exp() * (target_log - prediction_log), dim=-1).mean()


def classifier_loss(probabilities: Tensor, abnormal: bool) -> Tensor:
    """BCE against [1, 0] (pseudo-anomaly) or [0, 1] (normal) for (B, 2) sigmoid outputs."""
    labels = torch.zeros_like(probabilities, dtype=torch.float32)
    labels[:, 0 if abnormal else 1] = 1.0
    # BCE on probabilities is refused under CUDA autocast; it is cheap, so run it in float32.
    with torch.autocast(probabilities.device.type, enabled=False):
        return nn.functional.binary_cross_entropy(probabilities.float().clamp(1e-6, 1 - 1e-6), labels)
