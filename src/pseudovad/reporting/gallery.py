"""Image galleries: one row per sample, one labelled column per image kind (input, prediction,
pseudo-anomaly, flow error...), so what a generator produces can be judged at a glance."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402


def save_gallery(columns: dict[str, Tensor], path: Path, title: str = "") -> None:
    """Write a PNG grid of `columns` (each (B, C, H, W) in [-1, 1]) to `path`."""
    names = list(columns)
    rows = next(iter(columns.values())).shape[0]
    figure, axes = plt.subplots(rows, len(names), figsize=(1.9 * len(names), 1.9 * rows + 0.4), squeeze=False)
    for column, name in enumerate(names):
        images = ((columns[name].detach().float().cpu().numpy() + 1) / 2).clip(0, 1)
        for row in range(rows):
            image = np.moveaxis(images[row], 0, -1)
            axis = axes[row][column]
            axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(name, fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
