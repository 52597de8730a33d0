"""A frozen, differentiable optical-flow estimator for the flow loss of Future Frame Prediction.

FFP (Liu et al. 2018) compares `F(I_t, pred)` with `F(I_t, target)` through a frozen flow network,
so the generator is trained through the flow of its own prediction. Pretrained FlowNet/LiteFlowNet
weights cannot be downloaded here, so the default `F` is a coarse-to-fine Horn-Schunck solver
written with plain torch ops: it has no weights at all, and autograd reaches both input images
through the warps, the derivative filters and the unrolled Jacobi iterations.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pseudovad.errors import PseudovadError

# ITU-R BT.601 luma weights: flow only needs brightness, and one channel is 3x cheaper.
_LUMA = (0.299, 0.587, 0.114)
# The coarsest pyramid level keeps at least this many pixels per side; smaller levels hold too
# little structure to estimate anything and make the warp normalisation degenerate.
_MIN_LEVEL_SIZE = 8
# Pre-smoothing at every pyramid level: a sigma = 1 px Gaussian, radius 2.
_GAUSSIAN = tuple(math.exp(-(x**2) / 2) for x in range(-2, 3))
_GAUSSIAN = tuple(tap / sum(_GAUSSIAN) for tap in _GAUSSIAN)


def _separable(image: Tensor, taps: tuple[float, ...]) -> Tensor:
    """Correlate `image` with the symmetric 1-D `taps` along x, then y; replicate-padded, same size.

    Written as weighted sums of shifted slices of one padded tensor rather than conv2d: on CPU,
    oneDNN's backward pass of a 1-2 channel convolution measured ~5x slower than this, and the
    flow runs every training step.
    """
    radius = len(taps) // 2
    height, width = image.shape[-2:]
    padded = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    rows = _weighted_sum([padded.narrow(-1, i, width) for i in range(len(taps))], taps)
    return _weighted_sum([rows.narrow(-2, i, height) for i in range(len(taps))], taps)


def _weighted_sum(tensors: list[Tensor], weights: tuple[float, ...]) -> Tensor:
    # Inside the HS loop every op counts: torch.add's alpha fuses each multiply into its add,
    # and a leading weight of 1 (the binomial) needs no multiply at all.
    result = tensors[0] if weights[0] == 1 else tensors[0] * weights[0]
    for tensor, weight in zip(tensors[1:], weights[1:]):
        result = torch.add(result, tensor, alpha=weight)
    return result


def _gradient(image: Tensor) -> Tensor:
    """(B, 1, H, W) -> (B, 2, H, W): central differences (Ix, Iy), replicate-padded."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    dx = padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]
    dy = padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]
    return torch.cat([dx, dy], dim=1) / 2


def _neighbour_mean(flow: Tensor) -> Tensor:
    """Horn and Schunck's neighbourhood average: 1/6 for edge, 1/12 for corner neighbours.

    That 3x3 kernel is the separable binomial [1, 2, 1] x [1, 2, 1] with its centre (4) removed,
    normalised by the remaining weight (12). With replicate padding a symmetric 3-tap filter is a
    symmetric matrix (the edge pixel stands in for its missing neighbour on both sides of the
    equation), so this operator is its own adjoint: `_JacobiIterations` relies on that.
    """
    return torch.sub(_separable(flow, (1.0, 2.0, 1.0)), flow, alpha=4) / 12


class _JacobiIterations(torch.autograd.Function):
    """`iterations` HS Jacobi updates w <- mean(w) - scaled * residual, residual = grad I . mean(w) + It
    (brightness constancy linearised at the averaged flow), with a hand-written backward pass.

    The update is linear in w, so its adjoint is a short recurrence backwards over the stored
    averages and residuals. Differentiated op by op, autograd records ~10 nodes per iteration and
    allocates a zero-filled padded buffer for every slice of the average; this costs about half as much.
    `tests/test_flow.py` checks it against autograd with gradcheck.
    """

    @staticmethod
    def forward(ctx, flow: Tensor, gradient: Tensor, constant: Tensor, scaled: Tensor, iterations: int) -> Tensor:
        saved = []
        for _ in range(iterations):
            mean = _neighbour_mean(flow)
            residual = (gradient * mean).sum(dim=1, keepdim=True) + constant
            flow = torch.addcmul(mean, scaled, residual, value=-1)
            saved += [mean, residual]
        ctx.save_for_backward(gradient, constant, scaled, *saved)
        return flow

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_flow: Tensor) -> tuple[Tensor | None, ...]:
        gradient, constant, scaled, *saved = ctx.saved_tensors
        grad_gradient = torch.zeros_like(gradient)
        grad_constant = torch.zeros_like(constant)
        grad_scaled = torch.zeros_like(scaled)
        for mean, residual in reversed(list(zip(saved[::2], saved[1::2]))):
            along = (scaled * grad_flow).sum(dim=1, keepdim=True)
            grad_scaled.addcmul_(grad_flow, residual, value=-1)
            grad_constant.sub_(along)
            grad_gradient.addcmul_(mean, along, value=-1)
            grad_flow = _neighbour_mean(torch.addcmul(grad_flow, gradient, along, value=-1))
        return grad_flow, grad_gradient, grad_constant, grad_scaled, None


class HornSchunckFlow(nn.Module):
    """Coarse-to-fine Horn-Schunck optical flow with warping; weight-free and differentiable.

    At each pyramid level (coarsest first) the upsampled coarser flow `w0` warps `second` towards
    `first`; brightness constancy is linearised around `w0` and `iterations` Jacobi updates of the
    classic HS scheme solve for the flow there. The smoothness term acts on the whole flow, so the
    increment found at a level is the one that keeps the total flow smooth. With `warp=False`
    the coarser flow only warm-starts plain HS, linearised around zero motion.

    The module is frozen by construction: it has no parameters, only constants, so optimisers
    never see it, while gradients still reach both input images.

    `alpha` is the smoothness weight for intensities in [0, 1] (inputs in [-1, 1] are rescaled
    first); HS weighs `alpha**2` against the squared image gradient, so it must suit the contrast
    of surveillance frames, which is often low. Mean end-point errors for 0.4-7 px translations
    at the default levels and iterations, alpha = 0.01 / 0.02 / 0.05:
      low-contrast texture (mean |grad I| ~ 0.011 per pixel)   0.08 / 0.19 / 1.43 px
      the same with noise (std 0.01)                           0.36 / 0.33 / 1.43 px
      4x that contrast                                         0.13 / 0.10 / 0.08 px
      a noisy real photograph                                  0.52 / 0.50 / 0.51 px
    A larger alpha cannot converge on low-contrast frames within the iteration budget; a smaller
    one follows noise. 0.02 is never far from the best.

    `finest_iterations` (default: `iterations`) sets the count at the full-resolution level alone.
    That level starts from the coarser levels' solution, so it only refines by a pixel or less, and
    it costs 4x the level below: with 10 there instead of 20 the flow loss costs ~30 % less, and the
    end-point errors of 1.5-7 px translations of a texture go from 0.06-0.25 px to 0.07-0.31 px.
    """

    def __init__(
        self,
        levels: int = 3,
        iterations: int = 20,
        alpha: float = 0.02,
        warp: bool = True,
        finest_iterations: int | None = None,
    ) -> None:
        super().__init__()
        finest_iterations = iterations if finest_iterations is None else finest_iterations
        if levels < 1 or iterations < 1 or finest_iterations < 1 or alpha <= 0:
            raise ValueError("levels and iterations must be >= 1 and alpha > 0")
        self.levels = levels
        self.iterations = iterations
        self.finest_iterations = finest_iterations
        self.alpha = alpha
        self.warp = warp
        # A non-persistent buffer follows .to(device) but stays out of checkpoints: it is a
        # constant of the algorithm, not state.
        self.register_buffer("luma", torch.tensor(_LUMA).view(1, 3, 1, 1), persistent=False)

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        """Flow from `first` to `second`, i.e. first(x) ~ second(x + flow(x)).

        first, second: (B, C, H, W) images in [-1, 1], C = 1 or 3 (converted to luminance
        internally). Returns flow (B, 2, H, W) in pixels (dx, dy) at the input resolution, from
        first to second, in the input dtype.
        """
        shape = first.shape
        if shape != second.shape or len(shape) != 4 or shape[1] not in (1, 3) or min(shape[2:]) < 2:
            raise ValueError(
                f"expected two (B, 1|3, H, W) images of equal shape, H, W >= 2, got "
                f"{tuple(first.shape)} and {tuple(second.shape)}"
            )
        height, width = first.shape[-2:]
        # Float32 throughout: bfloat16 differences of nearly equal frames are mostly rounding
        # noise, so an enclosing autocast region must not downcast anything here either.
        with torch.autocast(device_type=first.device.type, enabled=False):
            levels = self._usable_levels(height, width)
            pyramids = [self._pyramid(self._gray(image), levels) for image in (first, second)]
            flow = torch.zeros_like(pyramids[0][-1]).expand(-1, 2, -1, -1)
            for level in reversed(range(levels)):
                if level < levels - 1:
                    flow = 2 * F.interpolate(
                        flow, scale_factor=2, mode="bilinear", align_corners=False
                    )
                iterations = self.finest_iterations if level == 0 else self.iterations
                flow = self._refine(pyramids[0][level], pyramids[1][level], flow, iterations)
        return flow[:, :, :height, :width].to(first.dtype)

    def _usable_levels(self, height: int, width: int) -> int:
        """Drop pyramid levels that would be smaller than `_MIN_LEVEL_SIZE` pixels per side."""
        levels = self.levels
        while levels > 1 and min(height, width) < _MIN_LEVEL_SIZE * 2 ** (levels - 1):
            levels -= 1
        return levels

    def _gray(self, image: Tensor) -> Tensor:
        """(B, C, H, W) in [-1, 1] -> (B, 1, H, W) luminance in [0, 1], float32."""
        image = image.float()
        if image.shape[1] == 3:
            image = (image * self.luma.float()).sum(dim=1, keepdim=True)
        return (image + 1) / 2

    def _pyramid(self, gray: Tensor, levels: int) -> list[Tensor]:
        """Gaussian-smoothed images, finest first, each half the size of the previous one.

        The finest level is replicate-padded to a multiple of 2**(levels - 1) so that every level
        is exactly twice its coarser neighbour and the flow upsamples without resampling errors;
        `forward` crops the padding off the result.
        """
        multiple = 2 ** (levels - 1)
        pad_h, pad_w = -gray.shape[-2] % multiple, -gray.shape[-1] % multiple
        if pad_h or pad_w:
            gray = F.pad(gray, (0, pad_w, 0, pad_h), mode="replicate")
        pyramid = [self._smooth(gray)]
        for _ in range(levels - 1):
            pyramid.append(self._smooth(F.avg_pool2d(pyramid[-1], 2)))
        return pyramid

    @staticmethod
    def _smooth(image: Tensor) -> Tensor:
        """Pre-smoothing: noise and fine detail break the linearised brightness constancy first."""
        return _separable(image, _GAUSSIAN)

    def _refine(self, first: Tensor, second: Tensor, flow: Tensor, iterations: int) -> Tensor:
        """HS Jacobi iterations at one level, starting from (and linearised around) `flow`."""
        if self.warp:
            second = self._warp(second, flow)
            initial = flow
        else:
            initial = torch.zeros_like(flow)
        # HS averages the spatial derivatives of both frames, i.e. differentiates their mean.
        gradient = _gradient((first + second) / 2)
        # Brightness constancy linearised around `initial`: grad . (w - initial) + It = 0.
        constant = second - first - (gradient * initial).sum(dim=1, keepdim=True)
        scaled = gradient / (self.alpha**2 + (gradient**2).sum(dim=1, keepdim=True))
        return _JacobiIterations.apply(flow, gradient, constant, scaled, iterations)

    @staticmethod
    def _warp(image: Tensor, flow: Tensor) -> Tensor:
        """Sample `image` at x + flow(x), bilinear with border padding: aligns second with first."""
        _, _, height, width = image.shape
        ys = torch.arange(height, device=image.device, dtype=image.dtype)
        xs = torch.arange(width, device=image.device, dtype=image.dtype)
        # grid_sample with align_corners=True maps -1 and 1 to the centres of the edge pixels.
        x = (xs.view(1, 1, width) + flow[:, 0]) * (2 / (width - 1)) - 1
        y = (ys.view(1, height, 1) + flow[:, 1]) * (2 / (height - 1)) - 1
        grid = torch.stack([x, y], dim=-1)
        return F.grid_sample(
            image, grid, mode="bilinear", padding_mode="border", align_corners=True
        )


class ExportedFlow(nn.Module):
    """A pretrained flow network the user supplies, saved with `torch.export.save` (a `.pt2` file).

    pseudovad ships no flow network and downloads none; this lets a user plug in FlowNet2, RAFT or
    LiteFlowNet as FFP used it. The program must take two images (B, C, H, W) in [-1, 1] and return
    the flow from the first to the second, (B, 2, H, W), in pixels; export it with a dynamic batch
    dimension (`dynamic_shapes` with `torch.export.Dim`), since training, sampling and scoring use
    different batch sizes, at the frame size of the config. An exported program is a graph of
    tensor operations, not pickled Python, so loading it runs no code of the file's author. Its
    parameters are frozen; gradients still reach both input images.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise PseudovadError(f"flow network {path} not found (flow.weights); export one with torch.export.save")
        try:
            program = torch.export.load(path)
        except Exception as error:  # torch.export raises many types for a file that is not a program
            raise PseudovadError(
                f"{path}: not a torch.export program ({type(error).__name__}); save the flow network with "
                "torch.export.save(torch.export.export(net, (image1, image2)), PATH)"
            ) from None
        self.network = program.module()
        self.network.requires_grad_(False)
        self.source = str(path)

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        flow = self.network(first, second)
        if not isinstance(flow, Tensor) or flow.shape != (first.shape[0], 2, *first.shape[-2:]):
            shape = tuple(flow.shape) if isinstance(flow, Tensor) else type(flow).__name__
            raise PseudovadError(
                f"flow network {self.source} returned {shape} for images of shape {tuple(first.shape)}; "
                f"expected flow of shape {(first.shape[0], 2, *first.shape[-2:])}"
            )
        return flow


class MemoisedFlow(nn.Module):
    """A frozen flow estimator that remembers the flows it computes between real frames.

    FFP's flow loss needs F(I_t, I_t+1) of the real clip at every step. It does not depend on the
    generator, and a run visits each clip many times (ped2_ffp_128: 6 epochs), so recomputing it was
    about a third of the flow term's cost. `reference` keys each sample by a digest of its two
    frames' bytes, so a hit returns exactly what the estimator computed for those frames (the
    estimators work sample by sample, so batch composition does not change a result). The memo
    stops growing at `capacity_mb`; 0 turns it off. `forward` is the plain, differentiable
    estimator, for the prediction's flow.
    """

    def __init__(self, estimator: nn.Module, capacity_mb: float) -> None:
        super().__init__()
        self.estimator = estimator
        self.capacity_bytes = int(capacity_mb * 2**20)
        self.stored_bytes = 0
        self.memo: dict[bytes, Tensor] = {}

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        return self.estimator(first, second)

    @torch.no_grad()
    def reference(self, first: Tensor, second: Tensor) -> Tensor:
        """The flow between two batches of real frames, without a graph; memoised per sample."""
        if self.capacity_bytes == 0:
            return self.estimator(first, second)
        keys = [self._key(a, b) for a, b in zip(first, second)]
        missing = [i for i, key in enumerate(keys) if key not in self.memo]
        fresh: dict[bytes, Tensor] = {}
        if missing:
            computed = self.estimator(first[missing], second[missing])
            fresh = {keys[i]: flow for i, flow in zip(missing, computed)}
            for key, flow in fresh.items():
                if self.stored_bytes + flow.nbytes <= self.capacity_bytes:
                    self.memo[key] = flow.clone()
                    self.stored_bytes += flow.nbytes
        return torch.stack([fresh[key] if key in fresh else self.memo[key] for key in keys])

    @staticmethod
    def _key(first: Tensor, second: Tensor) -> bytes:
        digest = hashlib.blake2b(f"{first.dtype}{tuple(first.shape)}".encode(), digest_size=16)
        for image in (first, second):
            digest.update(image.detach().contiguous().view(torch.uint8).cpu().numpy().data)
        return digest.digest()
