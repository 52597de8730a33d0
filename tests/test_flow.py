"""HornSchunckFlow: accuracy on known motions, differentiability, shapes and dtypes.

Thresholds are about 2-3x the errors measured with the defaults (noted next to each), so they
catch a broken estimator without tripping on harmless numerical changes.
"""

from __future__ import annotations

import math

import pytest
import torch

from pseudovad.models.flow import HornSchunckFlow, MemoisedFlow, _JacobiIterations, _neighbour_mean


def _texture(height: int, width: int, shift: tuple[float, float] = (0.0, 0.0), seed: int = 0):
    """A smooth random texture (1, 1, H, W), roughly in [-1, 1], moved by `shift` = (dx, dy) px.

    A sum of random plane waves evaluated at (x - dx, y - dy), so sub-pixel shifts are exact.
    """
    gen = torch.Generator().manual_seed(seed)
    waves = 24
    wavelength = 6 + 30 * torch.rand(waves, 1, 1, generator=gen, dtype=torch.float64)
    angle = 2 * math.pi * torch.rand(waves, 1, 1, generator=gen, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(waves, 1, 1, generator=gen, dtype=torch.float64)
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64),
        torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    along = torch.cos(angle) * (xs - shift[0]) + torch.sin(angle) * (ys - shift[1])
    image = torch.cos(2 * math.pi * along / wavelength + phase).sum(dim=0)
    return (0.35 / math.sqrt(waves) * image).float()[None, None]


def _interior_epe(flow: torch.Tensor, shift: tuple[float, float], border: int = 8) -> float:
    inner = flow[..., border:-border, border:-border]
    return ((inner[:, 0] - shift[0]) ** 2 + (inner[:, 1] - shift[1]) ** 2).sqrt().mean().item()


@pytest.fixture(scope="module")
def flow() -> HornSchunckFlow:
    return HornSchunckFlow()


def test_identical_images_give_zero_flow(flow):
    image = torch.cat([_texture(64, 64, seed=s) for s in range(2)]).expand(-1, 3, -1, -1)
    assert flow(image, image).abs().max() < 1e-5


@pytest.mark.parametrize(
    ("shift", "max_epe"),
    [
        ((1.5, -1.0), 0.15),  # measured 0.058
        ((-3.2, 0.7), 0.2),  # measured 0.070
        ((4.0, 2.5), 0.25),  # measured 0.103; needs the pyramid
        ((6.0, -4.0), 0.6),  # measured 0.254
    ],
)
def test_recovers_global_translation(flow, shift, max_epe):
    first, second = _texture(128, 128), _texture(128, 128, shift=shift)
    assert _interior_epe(flow(first, second), shift) < max_epe
    # The configs' default: 10 iterations at the finest level (measured 0.069, 0.082, 0.128, 0.307).
    fewer = HornSchunckFlow(finest_iterations=10)
    assert _interior_epe(fewer(first, second), shift) < max_epe


def test_pyramid_is_what_recovers_large_motion():
    shift = (4.0, 2.5)
    first, second = _texture(128, 128), _texture(128, 128, shift=shift)
    single_level = _interior_epe(HornSchunckFlow(levels=1)(first, second), shift)
    assert single_level > 0.6  # measured 1.36 (0.10 with 3 levels): 4.7 px is out of HS's reach


def test_moving_blob_on_static_background(flow):
    """A textured, pedestrian-sized blob moves 2 px right over a static textured scene."""
    height, width, step = 128, 128, 2.0
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32),
        torch.arange(width, dtype=torch.float32),
        indexing="ij",
    )
    background = 0.5 * _texture(height, width, seed=1)

    def frame(centre_x: float) -> tuple[torch.Tensor, torch.Tensor]:
        pattern = _texture(height, width, shift=(centre_x, 0.0), seed=2)
        radius = ((xs - centre_x) / 8) ** 2 + ((ys - 64) / 16) ** 2
        mask = torch.sigmoid(6 * (1 - radius))
        return background * (1 - mask) + (0.4 + 0.5 * pattern) * mask, mask

    first, mask = frame(50.0)
    second, _ = frame(50.0 + step)
    motion = flow(first, second)[0]
    on_blob = mask > 0.5
    assert 0.6 * step < motion[0][on_blob].mean() < 1.3 * step  # measured 1.86
    assert motion[1][on_blob].mean().abs() < 0.5  # measured 0.19
    far = (xs - 50).abs() > 30
    assert motion[:, far].norm(dim=0).mean() < 0.1  # measured 0.001


def test_gradients_reach_both_inputs_and_module_is_frozen(flow):
    assert list(flow.parameters()) == []
    assert not any(buffer.requires_grad for buffer in flow.buffers())
    first = _texture(48, 48).expand(2, 3, -1, -1).clone().requires_grad_()
    second = _texture(48, 48, shift=(1.0, 0.5)).expand(2, 3, -1, -1).clone().requires_grad_()
    flow(first, second).abs().mean().backward()
    for image in (first, second):
        assert torch.isfinite(image.grad).all()
        assert image.grad.abs().sum() > 0


@pytest.mark.parametrize(("height", "width"), [(45, 61), (37, 20), (5, 7)])
def test_odd_sizes_and_channel_counts(flow, height, width):
    gray = torch.cat([_texture(height, width, seed=s) for s in range(3)])
    moved = torch.cat([_texture(height, width, shift=(1.0, 0.0), seed=s) for s in range(3)])
    gray_flow = flow(gray, moved)
    assert gray_flow.shape == (3, 2, height, width)
    # Equal RGB channels have exactly the grey image as luminance.
    colour_flow = flow(gray.expand(-1, 3, -1, -1), moved.expand(-1, 3, -1, -1))
    torch.testing.assert_close(colour_flow, gray_flow, atol=1e-4, rtol=0)
    # Three different channels: the flow is that of their BT.601 luma, R first.
    rgb, rgb_moved = (torch.cat(list(images), dim=1) for images in (gray.split(1), moved.split(1)))
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    torch.testing.assert_close(flow(rgb, rgb_moved), flow((rgb * luma).sum(1, keepdim=True), (rgb_moved * luma).sum(1, keepdim=True)),
                               atol=1e-4, rtol=0)


def test_bfloat16_and_autocast(flow):
    first, second = _texture(45, 61), _texture(45, 61, shift=(1.0, -0.5))
    reference = flow(first, second)
    low = flow(first.bfloat16(), second.bfloat16())
    assert low.dtype == torch.bfloat16 and low.shape == (1, 2, 45, 61)
    torch.testing.assert_close(low.float(), reference, atol=0.05, rtol=0)  # computed in float32, rounded at the end
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = flow(first, second)
    assert autocast.dtype == torch.float32
    torch.testing.assert_close(autocast, reference)


def test_rejects_mismatched_inputs(flow):
    with pytest.raises(ValueError, match="equal shape"):
        flow(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 31))


def test_hand_written_jacobi_backward_matches_autograd():
    """The HS iterations' adjoint recurrence against finite differences, and against autograd
    through the same updates written op by op (the neighbour average is its own adjoint)."""
    gen = torch.Generator().manual_seed(0)

    def inputs() -> list[torch.Tensor]:
        shapes = [(2, 2, 6, 7), (2, 2, 6, 7), (2, 1, 6, 7), (2, 2, 6, 7)]
        return [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_() for s in shapes]

    assert torch.autograd.gradcheck(lambda *a: _JacobiIterations.apply(*a, 4), inputs())

    def op_by_op(flow, gradient, constant, scaled):
        for _ in range(4):
            mean = _neighbour_mean(flow)
            flow = mean - scaled * ((gradient * mean).sum(dim=1, keepdim=True) + constant)
        return flow

    values, weights = inputs(), torch.randn(2, 2, 6, 7, generator=gen, dtype=torch.float64)
    expected = torch.autograd.grad(op_by_op(*values), values, weights)
    actual = torch.autograd.grad(_JacobiIterations.apply(*values, 4), values, weights)
    for want, got in zip(expected, actual):
        torch.testing.assert_close(got, want)


def test_memoised_reference_flow_is_exactly_the_estimators():
    """Hits return what the estimator computes for the same frames, whatever batch they arrive in;
    the memo stops at its capacity and capacity 0 keeps nothing."""
    estimator = HornSchunckFlow(levels=2, iterations=5)
    first = torch.cat([_texture(32, 32, seed=s) for s in range(5)])
    second = torch.cat([_texture(32, 32, shift=(1.0, 0.5), seed=s) for s in range(5)])
    expected = estimator(first, second)
    memo = MemoisedFlow(estimator, capacity_mb=1)
    for batch in ([0, 1], [1, 2, 3], [4, 3, 0, 2, 1, 1]):
        assert torch.equal(memo.reference(first[batch], second[batch]), expected[batch])
    assert len(memo.memo) == 5 and memo.stored_bytes == 5 * 2 * 32 * 32 * 4
    # A different frame pair is a miss, not a stale hit.
    assert torch.equal(memo.reference(second[:1], first[:1]), estimator(second[:1], first[:1]))

    small = MemoisedFlow(estimator, capacity_mb=3 * 2 * 32 * 32 * 4 / 2**20)
    assert torch.equal(small.reference(first, second), expected) and len(small.memo) == 3
    off = MemoisedFlow(estimator, capacity_mb=0)
    assert torch.equal(off.reference(first, second), expected) and not off.memo
