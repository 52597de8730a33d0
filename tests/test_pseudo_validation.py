"""Pseudo-validation: held-out training videos with injected anomalies, never a test video."""

import json

import cv2
import numpy as np
import pytest

from media import write_frames
from pseudovad.data.layouts import load_dataset
from pseudovad.data.pseudo_validation import make_pseudo_validation
from pseudovad.errors import DataError


def test_held_out_training_videos_become_labelled_test_videos(tmp_path):
    root = tmp_path / "camera"
    for i in range(1, 6):
        write_frames(root / "training" / "frames" / f"{i:02d}", 60, size=(40, 40))
    write_frames(root / "testing" / "frames" / "01", 20, size=(40, 40))
    made = make_pseudo_validation(root, tmp_path / "validation", held_out=2, seed=0)
    dataset = load_dataset(made)
    assert [v.name for v in dataset.train] == ["01", "02", "03"]
    assert [v.name for v in dataset.test] == ["04", "05"]  # training videos, never the real test video
    description = json.loads((made / "dataset.json").read_text())
    assert sorted(e["kind"] for e in description["events"]) == ["foreign_object", "foreign_object", "speed_up", "speed_up"]
    labels = np.concatenate(dataset.test_labels)
    assert labels.sum() == sum(e["end"] - e["start"] for e in description["events"])
    assert dataset.test[0].num_frames == 60 - 2 * (description["events"][0]["end"] - description["events"][0]["start"])
    assert make_pseudo_validation(root, tmp_path / "validation", held_out=2) == made  # reused, not rebuilt


def test_a_folder_made_from_another_dataset_is_refused_not_reused(tmp_path):
    for name in ("a", "b"):
        for i in range(1, 4):
            write_frames(tmp_path / name / "ped2" / "training" / "frames" / f"{i:02d}", 60, size=(40, 40))
    made = make_pseudo_validation(tmp_path / "a" / "ped2", tmp_path / "validation", held_out=1)
    before = sorted(p.relative_to(made) for p in made.rglob("*"))
    with pytest.raises(DataError, match=r"made with other settings \(made_from '.*a/ped2', not '.*b/ped2'; sources '\w+', not '\w+'\); delete it"):
        make_pseudo_validation(tmp_path / "b" / "ped2", made, held_out=1)  # same folder name, other videos
    with pytest.raises(DataError, match=r"held_out \['03'\], not \['02', '03'\]; seed 0, not 3"):
        make_pseudo_validation(tmp_path / "a" / "ped2", made, held_out=2, seed=3)
    assert sorted(p.relative_to(made) for p in made.rglob("*")) == before  # refused, nothing remade
    (made / "dataset.json").write_text("{")
    with pytest.raises(DataError, match="unreadable"):
        make_pseudo_validation(tmp_path / "a" / "ped2", made, held_out=1)


def test_a_folder_made_from_data_since_replaced_under_the_same_names_is_refused(tmp_path):
    """Its test videos are copies of the old frames and its training videos links to the new ones: reusing
    it would choose settings on a mixture of two datasets."""
    root = tmp_path / "camera"
    for i in range(1, 4):
        write_frames(root / "training" / "frames" / f"{i:02d}", 60, size=(40, 40))
    made = make_pseudo_validation(root, tmp_path / "validation", held_out=1)
    cv2.imwrite(str(root / "training" / "frames" / "02" / "000.jpg"), np.full((40, 40), 200, dtype=np.uint8))
    with pytest.raises(DataError, match=r"made with other settings \(sources '\w+', not '\w+'\); delete it"):
        make_pseudo_validation(root, made, held_out=1)
