"""The patch grid covers the frame edge to edge, cuts patches where it says, and pastes them back;
the smooth box pseudo-anomalies are pasted with."""

import numpy as np
import pytest
import torch

from pseudovad.data.patches import PatchGrid, smooth_box


def test_ped2_grid_is_6_rows_by_8_columns_of_45():
    grid = PatchGrid(240, 360, 45, 45)
    assert len(grid) == 48
    assert sorted({top for top, _ in grid.corners}) == [0, 39, 78, 117, 156, 195]
    assert sorted({left for _, left in grid.corners}) == [0, 45, 90, 135, 180, 225, 270, 315]


def test_every_pixel_is_in_a_patch_and_patches_are_cut_where_the_grid_says():
    grid = PatchGrid(50, 70, 20, 30)
    frames = torch.arange(2 * 50 * 70, dtype=torch.float32).view(2, 1, 50, 70)
    patches = grid.cut(frames)
    assert patches.shape == (2, len(grid), 1, 20, 30)
    covered = torch.zeros(50, 70, dtype=torch.bool)
    for index, (top, left) in enumerate(grid.corners):
        torch.testing.assert_close(patches[:, index], frames[..., top : top + 20, left : left + 30])
        covered[top : top + 20, left : left + 30] = True
    assert covered.all()
    torch.testing.assert_close(grid.paste(patches), frames)


def test_a_patch_as_large_as_the_frame_is_the_frame():
    frames = torch.rand(3, 1, 24, 32)
    grid = PatchGrid(24, 32, 24, 32)
    assert grid.corners == [(0, 0)]
    torch.testing.assert_close(grid.cut(frames)[:, 0], frames)


def test_a_patch_larger_than_the_frame_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        PatchGrid(40, 40, 45, 45)


def test_a_smooth_box_is_one_inside_falls_towards_its_edges_and_is_symmetric():
    box = smooth_box(10, 16, 0.5)
    assert box.shape == (10, 16) and box[5, 8] == 1.0 and (box > 0).all() and (box <= 1).all()
    assert np.array_equal(box, box[::-1]) and np.array_equal(box, box[:, ::-1])
    row = box[5]
    assert row[0] < row[1] < row[2] < row[3] == 1.0  # a ramp over the outer half of each half-side (4 of 8 pixels)
    assert (smooth_box(6, 6, 0.0) == 1.0).all()  # no border: a hard-edged box
