"""The synthetic dataset: layout, exact labels, all anomaly kinds, determinism, refusing to overwrite."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from pseudovad.data.synthetic import KINDS, PRESETS, SCENE_VERSION, generate_synthetic, plan_events, synthetic_scene
from pseudovad.errors import DataError, PseudovadError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "tiny"
    return out, generate_synthetic(out, seed=0, preset="tiny")


def _frames(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _labels_per_video(root: Path, description: dict) -> dict[str, np.ndarray]:
    labels = np.load(root / "frame_labels_synthetic.npy")[0]
    out, offset = {}, 0
    for name in sorted(description["test_videos"]):
        n = description["test_videos"][name]
        out[name] = labels[offset : offset + n]
        offset += n
    return out


def test_layout_matches_description(tiny):
    root, description = tiny
    preset = PRESETS["tiny"]
    assert json.loads((root / "dataset.json").read_text()) == description
    assert description["generator"] == "pseudovad.synthetic"
    assert (description["seed"], description["preset"]) == (0, "tiny")
    assert (description["width"], description["height"]) == (preset.width, preset.height)
    assert "end exclusive" in description["label_convention"]
    assert description["train_videos"] == {f"{i:02d}": preset.train_frames for i in range(1, preset.train_videos + 1)}
    assert description["test_videos"] == {f"{i:02d}": preset.test_frames for i in range(1, preset.test_videos + 1)}

    for split, videos in (("training", description["train_videos"]), ("testing", description["test_videos"])):
        assert sorted(p.name for p in (root / split / "frames").iterdir()) == sorted(videos)
        for name, n in videos.items():
            frames = _frames(root / split / "frames" / name)
            assert [p.name for p in frames] == [f"{i:03d}.png" for i in range(n)]
            image = cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED)
            assert image.shape == (preset.height, preset.width, 3) and image.dtype == np.uint8
    for name, n in description["test_videos"].items():
        assert [p.name for p in _frames(root / "testing" / "pixel_masks" / name)] == [f"{i:03d}.png" for i in range(n)]

    labels = np.load(root / "frame_labels_synthetic.npy")
    assert labels.dtype == np.uint8
    assert labels.shape == (1, sum(description["test_videos"].values()))
    assert set(np.unique(labels)) == {0, 1}


def test_labels_are_non_empty_masks(tiny):
    root, description = tiny
    for name, labels in _labels_per_video(root, description).items():
        for i, path in enumerate(_frames(root / "testing" / "pixel_masks" / name)):
            mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            assert mask.ndim == 2 and set(np.unique(mask)) <= {0, 255}
            assert labels[i] == int(mask.any()), f"video {name} frame {i}"
        # Every test video holds an anomaly, and normal frames around it.
        assert 0 < labels.sum() < len(labels)
        assert labels[:4].sum() == 0


def test_events_agree_with_labels(tiny):
    root, description = tiny
    labels = _labels_per_video(root, description)
    covered = {name: np.zeros(n, np.uint8) for name, n in description["test_videos"].items()}
    for event in description["events"]:
        assert set(event) == {"video", "kind", "start", "end"}
        assert 0 <= event["start"] < event["end"] <= description["test_videos"][event["video"]]
        assert labels[event["video"]][event["start"] : event["end"]].all()
        covered[event["video"]][event["start"] : event["end"]] = 1
    for name in labels:
        np.testing.assert_array_equal(covered[name], labels[name])


def test_all_kinds_appear(tiny):
    _, description = tiny
    assert {event["kind"] for event in description["events"]} == set(KINDS)
    for kind in KINDS:
        assert sum(e["end"] - e["start"] for e in description["events"] if e["kind"] == kind) >= 3


def test_training_videos_are_normal(tiny):
    root, description = tiny
    assert not (root / "training" / "pixel_masks").exists()
    assert {event["video"] for event in description["events"]} <= set(description["test_videos"])
    # Nobody walks on the near grass strip in normal activity: it changes only by noise and lighting.
    height = description["height"]
    for name in description["train_videos"]:
        frames = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in _frames(root / "training" / "frames" / name)])
        grass = frames[:, int(0.83 * height) :].astype(float)
        assert np.abs(grass - np.median(grass, axis=0)).max() < 20


def test_same_seed_gives_identical_files(tiny, tmp_path):
    root, description = tiny
    again = generate_synthetic(tmp_path / "again", seed=0, preset="tiny")
    assert again == description
    assert _hashes(tmp_path / "again") == _hashes(root)


def test_other_seed_gives_other_content(tiny, tmp_path):
    root, _ = tiny
    generate_synthetic(tmp_path / "other", seed=1, preset="tiny")
    ours, theirs = _hashes(root), _hashes(tmp_path / "other")
    frames = [name for name in ours if "/frames/" in name]
    assert sum(ours[name] != theirs.get(name) for name in frames) > 0.9 * len(frames)


def test_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / "data"
    generate_synthetic(out, preset="tiny")
    stale = out / "training" / "frames" / "99" / "000.png"  # as a larger preset's extra video would be
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    with pytest.raises(PseudovadError, match="not empty"):
        generate_synthetic(out, preset="tiny")
    assert stale.exists()
    generate_synthetic(out, preset="tiny", overwrite=True)
    assert not stale.exists()
    assert (out / "dataset.json").is_file()


def test_overwrite_replaces_only_a_synthetic_dataset(tmp_path):
    """`synth --force` on a real dataset's folder (training/ and testing/, as Ped2's) deletes nothing;
    a generation killed before its dataset.json (its marker written first) is replaced."""
    real = tmp_path / "ped2"
    for part in ("training/frames/01/000.jpg", "testing/frames/01/000.jpg", "notes.txt"):
        (real / part).parent.mkdir(parents=True, exist_ok=True)
        (real / part).write_bytes(b"user's")
    before = _hashes(real)
    with pytest.raises(PseudovadError, match="holds no synthetic dataset that pseudovad wrote"):
        generate_synthetic(real, preset="tiny", overwrite=True)
    assert _hashes(real) == before
    (real / ".pseudovad-synthetic").touch()
    with pytest.raises(PseudovadError, match="also holds notes.txt"):
        generate_synthetic(real, preset="tiny", overwrite=True)
    assert _hashes(real) == {**before, ".pseudovad-synthetic": hashlib.sha256(b"").hexdigest()}

    killed = tmp_path / "killed"
    generate_synthetic(killed, preset="tiny")
    (killed / "dataset.json").unlink()
    (killed / "training" / "frames" / "99").mkdir()
    generate_synthetic(killed, preset="tiny", overwrite=True)
    assert (killed / "dataset.json").is_file() and not (killed / "training" / "frames" / "99").exists()


def test_a_scene_is_reused_only_if_drawn_with_the_same_seed_preset_and_version(tiny, tmp_path):
    root, description = tiny
    shutil.copytree(root, tmp_path / "scene")
    scene = tmp_path / "scene"
    before = _hashes(scene)
    assert synthetic_scene(scene, 0, "tiny") == scene and _hashes(scene) == before  # reused, untouched
    with pytest.raises(DataError, match=r"made with other settings \(seed 0, not 1\)"):
        synthetic_scene(scene, 1, "tiny")
    (scene / "dataset.json").write_text(json.dumps({**description, "version": SCENE_VERSION + 1}))
    with pytest.raises(DataError, match=rf"made with other settings \(version {SCENE_VERSION + 1}, not {SCENE_VERSION}\)"):
        synthetic_scene(scene, 0, "tiny")
    assert _hashes(scene).keys() == before.keys()  # refused, nothing deleted
    (scene / "dataset.json").write_text(json.dumps({k: v for k, v in description.items() if k != "version"}))
    assert synthetic_scene(scene, 0, "tiny") == scene  # written before versions existed: version 1
    assert synthetic_scene(tmp_path / "new", 2, "tiny").joinpath("dataset.json").is_file()  # absent: drawn


def test_refuses_a_file_as_output(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(PseudovadError, match="is a file"):
        generate_synthetic(target, preset="tiny", overwrite=True)


def test_unknown_preset_names_the_valid_ones(tmp_path):
    with pytest.raises(PseudovadError) as info:
        generate_synthetic(tmp_path / "x", preset="huge")
    assert "huge" in str(info.value)
    for name in PRESETS:
        assert name in str(info.value)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_default_plan_has_every_kind_twice(seed):
    preset = PRESETS["default"]
    plan = plan_events(preset, np.random.default_rng(seed))
    for kind in KINDS:
        assert sum(event.kind == kind for event in plan) >= 2
    assert {event.video for event in plan} == set(range(preset.test_videos))
    anomalous = 0
    for video in range(preset.test_videos):
        events = sorted((e for e in plan if e.video == video), key=lambda e: e.start)
        assert events[0].start >= 4 and events[-1].start + events[-1].length < preset.test_frames
        for before, after in zip(events, events[1:]):
            assert before.start + before.length < after.start
        assert 20 <= sum(e.length for e in events) <= 0.6 * preset.test_frames
        anomalous += sum(e.length for e in events)
    assert 0.3 <= anomalous / (preset.test_videos * preset.test_frames) <= 0.5


def test_tiny_plan_fits_its_short_videos():
    preset = PRESETS["tiny"]
    plan = plan_events(preset, np.random.default_rng(0))
    assert sorted(event.kind for event in plan) == sorted(KINDS)
    for event in plan:
        assert 4 <= event.start and event.start + event.length < preset.test_frames
