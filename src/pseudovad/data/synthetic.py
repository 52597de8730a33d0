"""The built-in dataset: a deterministic synthetic surveillance scene with labelled anomalies.

A fixed camera looks down at a paved walkway with grass on both sides, like a scaled-down UCSD Ped2.
Training videos hold only pedestrians walking along the walkway in both directions; test videos add
anomalies modelled on Ped2 and CUHK Avenue, each with a motion or appearance that the normal videos
never show, so a future-frame predictor trained on them fails to predict it:

- `running`: a pedestrian at about three times walking speed with a fast, wide gait;
- `vehicle`: a car, a bike with its rider or a small cart riding along the walkway;
- `thrown_object`: a small object flying across the scene on a fast ballistic arc;
- `wrong_way`: a pedestrian crossing the walkway and both grass strips, where nobody walks.

Frames and pixel masks are drawn from the same shapes, so the labels are exact: a test frame is
anomalous iff some anomalous object is visible in it. Everything comes from one seed, and the same
seed gives byte-identical files.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pseudovad.data.generated import reusable
from pseudovad.data.labels import mask_runs
from pseudovad.errors import PseudovadError
from pseudovad.files import remove, write_json

KINDS = ("running", "vehicle", "thrown_object", "wrong_way")
SCENE_VERSION = 1  # raise it with any change that alters the frames or labels a seed draws

LABEL_CONVENTION = (
    "frame_labels_synthetic.npy is a uint8 array of shape (1, total test frames): 1 = anomalous, the test "
    "videos concatenated in sorted name order (MNAD format). A test frame is anomalous iff its mask "
    "testing/pixel_masks/<video>/<frame>.png is non-empty, i.e. some anomalous object is visible. Each event "
    "gives 0-based frame indices within its video: start inclusive, end exclusive."
)


@dataclass(frozen=True)
class SynthPreset:
    """The size of a generated dataset and how busy its scene is.

    `walk_cross_frames` sets the walking speed: the frames a pedestrian on the nearest lane needs to
    walk across the image. `anomaly_counts` says how many anomalies of each kind the test set holds.
    """

    width: int
    height: int
    train_videos: int
    train_frames: int
    test_videos: int
    test_frames: int
    crowd: float
    walk_cross_frames: int
    anomaly_counts: tuple[tuple[str, int], ...]
    noise_sigma: float = 1.0

    def __post_init__(self) -> None:
        unknown = {kind for kind, _ in self.anomaly_counts} - set(KINDS)
        if unknown:
            raise ValueError(f"unknown anomaly kinds {sorted(unknown)}; valid: {', '.join(KINDS)}")
        if sum(count for _, count in self.anomaly_counts) < self.test_videos:
            raise ValueError("every test video needs an anomaly: anomaly_counts must add up to at least test_videos")
        if not (0 < self.train_videos <= 99 and 0 < self.test_videos <= 99):
            raise ValueError("video folders are named 01..99")
        if not (20 <= self.test_frames <= 1000 and 5 <= self.train_frames <= 1000):
            raise ValueError("frames are named 000..999, and test videos need room for an anomaly and normal frames")


PRESETS: dict[str, SynthPreset] = {
    "tiny": SynthPreset(
        width=64, height=48, train_videos=2, train_frames=24, test_videos=4, test_frames=30,
        crowd=2.0, walk_cross_frames=60,
        anomaly_counts=(("running", 1), ("vehicle", 1), ("thrown_object", 1), ("wrong_way", 1)),
    ),
    "default": SynthPreset(
        width=160, height=120, train_videos=8, train_frames=120, test_videos=8, test_frames=150,
        crowd=4.0, walk_cross_frames=120,
        anomaly_counts=(("running", 3), ("vehicle", 2), ("thrown_object", 3), ("wrong_way", 2)),
    ),
}

# Scene geometry, in fractions of the image height. The ground plane's horizon lies above the image,
# so a person's height in pixels grows linearly with the image row of their feet.
_HORIZON = -0.7
_PERSON_SIZE = 0.204  # height of a person, per unit of (feet row - horizon)
_WALK_TOP, _WALK_BOTTOM = 0.30, 0.80  # the walkway; grass above and below it
_LANE_FAR, _LANE_NEAR = 0.42, 0.77  # where walking pedestrians put their feet
_SHADOW_DEPTH = 0.35  # how much a shadow darkens the ground
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 3, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH]
_SHIFT = 4  # fractional bits for cv2 drawing, so slow motion stays smooth

Color = tuple[float, float, float]


@dataclass(frozen=True)
class PlannedEvent:
    """One anomaly of the test set: its video (0-based index), kind and the frames it may occupy.

    The rendered event can start or end a frame or two inside [start, start + length), depending on
    when the object's first and last pixels are in view; dataset.json records the rendered one.
    """

    video: int
    kind: str
    start: int
    length: int


def generate_synthetic(out: Path, seed: int = 0, preset: str = "default", *, overwrite: bool = False) -> dict:
    """Write the dataset to `out` and return the dataset.json content."""
    if preset not in PRESETS:
        raise PseudovadError(f"unknown synthetic preset {preset!r}; valid presets: {', '.join(sorted(PRESETS))}")
    if seed < 0:
        raise PseudovadError(f"the seed must be a non-negative integer, got {seed}")
    out = Path(out)
    _prepare_output(out, overwrite)
    config = PRESETS[preset]
    scene = _Scene(config.width, config.height)
    scene_seed, plan_seed, video_seed = np.random.SeedSequence(seed).spawn(3)
    background = _background(scene, np.random.default_rng(scene_seed))
    plan = plan_events(config, np.random.default_rng(plan_seed))
    video_seeds = video_seed.spawn(config.train_videos + config.test_videos)

    train_videos = {}
    for index in range(config.train_videos):
        name = f"{index + 1:02d}"
        rng = np.random.default_rng(video_seeds[index])
        actors = _normal_walkers(scene, config, config.train_frames, rng)
        _render_video(scene, background, actors, config.train_frames, rng, config.noise_sigma,
                      out / "training" / "frames" / name, None)
        train_videos[name] = config.train_frames

    test_videos, events, labels = {}, [], []
    for index in range(config.test_videos):
        name = f"{index + 1:02d}"
        rng = np.random.default_rng(video_seeds[config.train_videos + index])
        actors = _normal_walkers(scene, config, config.test_frames, rng)
        actors += [_anomaly(scene, planned, rng) for planned in plan if planned.video == index]
        video_labels, visible = _render_video(scene, background, actors, config.test_frames, rng,
                                              config.noise_sigma, out / "testing" / "frames" / name,
                                              out / "testing" / "pixel_masks" / name)
        for kind, frames in visible:
            shown = np.isin(np.arange(config.test_frames), frames)
            events += [{"video": name, "kind": kind, "start": start, "end": end} for start, end in mask_runs(shown)]
        test_videos[name] = config.test_frames
        labels.append(video_labels)

    np.save(out / "frame_labels_synthetic.npy", np.concatenate(labels)[None, :])
    description = {
        "generator": "pseudovad.synthetic",
        "version": SCENE_VERSION,
        "seed": int(seed),
        "preset": preset,
        "width": config.width,
        "height": config.height,
        "train_videos": train_videos,
        "test_videos": test_videos,
        "events": sorted(events, key=lambda e: (e["video"], e["start"], e["kind"])),
        "label_convention": LABEL_CONVENTION,
    }
    write_json(description, out / "dataset.json", indent=2)
    return description


def synthetic_scene(out: Path, seed: int, preset: str = "default", *, overwrite: bool = False) -> Path:
    """The scene at `out`: drawn now, or reused if drawn before with this seed, preset and version
    (anything else there is refused, see data/generated.py). `overwrite` as `generate_synthetic`'s."""
    out = Path(out)
    if not reusable(out, {"seed": seed, "preset": preset, "version": SCENE_VERSION}, defaults={"version": 1}):
        generate_synthetic(out, seed, preset, overwrite=overwrite)
    return out


def plan_events(preset: SynthPreset, rng: np.random.Generator) -> list[PlannedEvent]:
    """Decide which anomalies each test video holds and when, without rendering anything.

    Every video gets at least one anomaly and starts and ends with normal frames: a predictor needs a
    few normal frames of context, and per-video score normalisation needs both classes.
    """
    kinds = [kind for kind, count in preset.anomaly_counts for _ in range(count)]
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    lengths = [_nominal_length(kind, preset, rng) for kind in kinds]

    # Longest first onto the least busy video, so every video gets one before any gets two.
    video_order = [int(v) for v in rng.permutation(preset.test_videos)]
    assigned: dict[int, list[int]] = {v: [] for v in video_order}
    for i in sorted(range(len(kinds)), key=lambda i: -lengths[i]):
        video = min(video_order, key=lambda v: sum(lengths[j] for j in assigned[v]))
        assigned[video].append(i)

    n = preset.test_frames
    lead, tail, min_gap = max(4, n // 10), max(3, n // 10), 3
    plan = []
    for video in sorted(assigned):
        members = [assigned[video][j] for j in rng.permutation(len(assigned[video]))]
        room = min(n - lead - tail - min_gap * (len(members) - 1), int(0.6 * n))
        scale = min(1.0, room / sum(lengths[i] for i in members))
        video_lengths = [max(4, int(lengths[i] * scale)) for i in members]
        spare = max(0, n - lead - tail - min_gap * (len(members) - 1) - sum(video_lengths))
        gaps = np.floor(rng.dirichlet(np.ones(len(members) + 1)) * spare).astype(int)
        start = lead + int(gaps[0])
        for i, length, gap in zip(members, video_lengths, gaps[1:]):
            plan.append(PlannedEvent(video=video, kind=kinds[i], start=start, length=length))
            start += length + min_gap + int(gap)
    return plan


def _nominal_length(kind: str, preset: SynthPreset, rng: np.random.Generator) -> int:
    """Frames an anomaly stays in view: its path across the image over its speed (in walking speeds)."""
    walk = preset.walk_cross_frames
    if kind == "running":
        frames = walk * 1.2 / rng.uniform(2.7, 3.4)
    elif kind == "vehicle":
        frames = walk * 1.45 / rng.uniform(2.4, 3.2)
    elif kind == "thrown_object":
        frames = walk * 1.1 / rng.uniform(5.0, 7.0)
    else:  # wrong_way: top to bottom of the image, hurrying
        frames = walk * 1.2 / rng.uniform(1.7, 2.1)
    return int(round(frames))


# What the generator writes in its folder: all that `overwrite` may delete. The marker is written first,
# so a generation killed before dataset.json (written last) can still be replaced.
MARKER = ".pseudovad-synthetic"
_WRITTEN = ("training", "testing", "frame_labels_synthetic.npy", "dataset.json", MARKER)


def _prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse to mix a new dataset into existing files; replace an earlier synthetic one if asked, and
    nothing else: `--force` on a real dataset's folder would otherwise delete its training/ and testing/."""
    if out.exists() and not out.is_dir():
        raise PseudovadError(f"{out} is a file; give a folder for the synthetic dataset")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise PseudovadError(f"{out} is not empty; choose another folder, or pass overwrite (--force) to replace "
                                 "the synthetic dataset in it")
        _check_replaceable(out)
        for name in _WRITTEN:  # all of it, so stale frames of a larger preset cannot survive
            remove(out / name)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()


def _check_replaceable(out: Path) -> None:
    """Raise unless `out` holds a synthetic dataset this generator wrote, and nothing else."""
    try:
        made = json.loads((out / "dataset.json").read_text()).get("generator") if (out / "dataset.json").is_file() else None
    except (OSError, ValueError, AttributeError):
        made = None
    if not (out / MARKER).is_file() and made != "pseudovad.synthetic":
        raise PseudovadError(f"--force refused: {out} holds no synthetic dataset that pseudovad wrote (no {MARKER}, and no "
                             "dataset.json of `pseudovad synth`); it may be a real dataset. Choose an empty folder")
    foreign = sorted(entry.name for entry in out.iterdir() if entry.name not in _WRITTEN)
    if foreign:
        raise PseudovadError(f"--force refused: {out} also holds {', '.join(foreign[:5])}, which `pseudovad synth` did not "
                             "write; move them out first, or choose an empty folder")


# --------------------------------------------------------------------------------------------------
# Scene


class _Scene:
    """Image size and ground geometry in pixels."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.lane_far, self.lane_near = _LANE_FAR * height, _LANE_NEAR * height

    def person_height(self, feet_y: float) -> float:
        return _PERSON_SIZE * (feet_y - _HORIZON * self.height)

    def walking_speed(self, feet_y: float, walk_cross_frames: int) -> float:
        """Pixels per frame: nearer people cover more pixels per step (perspective)."""
        return self.person_height(feet_y) / self.person_height(self.lane_near) * self.width / walk_cross_frames


def _background(scene: _Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The empty scene as a float32 gray image plus a per-pixel integer tint (B, G, R offsets).

    The tint is added, not multiplied, so the three channels carry the same texture and noise: that
    is what a nearly gray camera image looks like, and PNG stores such frames a third smaller.
    Drawn at twice the size and shrunk, so edges are smooth.
    """
    ss = 2
    h, w = scene.height * ss, scene.width * ss
    rows = (np.arange(h) + 0.5) / h  # in image heights
    cols = (np.arange(w) + 0.5) / h
    y, x = np.meshgrid(rows, cols, indexing="ij")

    # Paving bricks in a running bond, laid out on the ground plane and seen in perspective.
    brick_depth, brick_length = 0.03, 0.08
    depth = 1.0 / (y - _HORIZON)
    lateral = (x - 0.5 * scene.width / scene.height) * depth
    row_f = depth / brick_depth
    row = np.floor(row_f).astype(int)
    col_f = lateral / brick_length + 0.5 * (row % 2)
    col = np.floor(col_f).astype(int)
    to_row_joint = np.minimum(row_f - row, row + 1 - row_f) * brick_depth * (y - _HORIZON) ** 2 * scene.height
    to_col_joint = np.minimum(col_f - col, col + 1 - col_f) * brick_length / depth * scene.height
    joint = np.clip(1.0 - np.minimum(to_row_joint, to_col_joint) / 0.6, 0.0, 1.0)
    brick_shade = rng.normal(0.0, 7.0, (97, 89))[row % 97, col % 89]
    grain = cv2.GaussianBlur(rng.normal(0.0, 2.0, (h, w)), (0, 0), 0.9)
    paving = 150.0 + brick_shade - 36.0 * joint + grain

    blades = cv2.GaussianBlur(rng.normal(0.0, 10.0, (h, w)), (0, 0), sigmaX=1.0, sigmaY=2.0)
    grass = 92.0 + blades

    on_walk = (y >= _WALK_TOP) & (y <= _WALK_BOTTOM)
    curb = on_walk & ((y < _WALK_TOP + 0.018) | (y > _WALK_BOTTOM - 0.018))
    curb_shadow = (~on_walk) & ((np.abs(y - _WALK_TOP) < 0.008) | (np.abs(y - _WALK_BOTTOM) < 0.008))
    gray = np.where(on_walk, paving, grass)
    gray = np.where(curb, 182.0 + grain, gray)
    gray = np.where(curb_shadow, 55.0 + grain, gray).astype(np.float32)
    tint = np.where(on_walk[..., None], (-1.0, 0.0, 1.0), (-3.0, 3.0, -2.0)).astype(np.float32)  # grass: greenish

    _draw_scenery(gray, tint, scene, ss, rng, grain)
    gray = cv2.resize(gray, (scene.width, scene.height), interpolation=cv2.INTER_AREA)
    tint = cv2.resize(tint, (scene.width, scene.height), interpolation=cv2.INTER_AREA)
    return np.clip(gray, 0, 255), np.rint(tint).astype(np.int16)


def _draw_scenery(gray: np.ndarray, tint: np.ndarray, scene: _Scene, ss: int, rng: np.random.Generator,
                  grain: np.ndarray) -> None:
    """Static objects on the far grass (bushes, a lamp post, a bench) make the scene read as a place."""
    h, w = scene.height * ss, scene.width * ss
    bushes = np.zeros(gray.shape, np.uint8)
    for cx in rng.permutation(np.linspace(0.08, 0.92, 4))[:3] * w:
        cy = rng.uniform(0.06, 0.17) * h
        for _ in range(4):
            center = (int(cx + rng.uniform(-0.06, 0.06) * h), int(cy + rng.uniform(-0.03, 0.03) * h))
            axes = (int(rng.uniform(0.04, 0.07) * h), int(rng.uniform(0.03, 0.05) * h))
            cv2.ellipse(bushes, center, axes, 0, 0, 360, 1, -1)
    gray[bushes > 0] = (58.0 + 2.0 * grain)[bushes > 0]

    objects = np.zeros(gray.shape, np.uint8)  # where the grass tint gives way to gray objects
    pole_x = int(rng.uniform(0.6, 0.9) * w)
    for image, value in ((gray, 70.0), (objects, 1)):
        cv2.line(image, (pole_x, int(0.285 * h)), (pole_x, int(0.03 * h)), value, max(1, int(0.012 * h)))
        cv2.line(image, (pole_x, int(0.03 * h)), (pole_x + int(0.04 * h), int(0.03 * h)), value, max(1, int(0.008 * h)))
    lamp = ((pole_x + int(0.045 * h), int(0.04 * h)), (int(0.018 * h), int(0.01 * h)))
    cv2.ellipse(gray, *lamp, 0, 0, 360, 210.0, -1)
    cv2.ellipse(objects, *lamp, 0, 0, 360, 1, -1)

    bench_x, bench_y, half = int(rng.uniform(0.1, 0.45) * w), int(0.25 * h), int(0.07 * h)
    for image, wood, iron in ((gray, 118.0, 50.0), (objects, 1, 1)):
        for top, bottom in ((0.035, 0.028), (0.06, 0.05)):
            cv2.rectangle(image, (bench_x - half, bench_y - int(top * h)), (bench_x + half, bench_y - int(bottom * h)),
                          wood, -1)
        for leg_x in (bench_x - half + 2, bench_x + half - 2):
            cv2.line(image, (leg_x, bench_y), (leg_x, bench_y - int(0.06 * h)), iron, max(1, ss))
    tint[objects > 0] = (0.0, 0.0, 2.0)


# --------------------------------------------------------------------------------------------------
# Drawing: actors describe themselves as shapes, drawn once in colour and once as a mask.
#
# A shape is ("poly", points, color) | ("ellipse", center, axes, color) | ("line", p, q, width, color)
# | ("ring", center, radius, width, color), in image pixels (floats; width in whole pixels).


def _fixed(point: tuple[float, float]) -> tuple[int, int]:
    return int(round(point[0] * (1 << _SHIFT))), int(round(point[1] * (1 << _SHIFT)))


def _draw(image: np.ndarray, shapes: list[tuple], value: float | None = None, antialias: bool = True) -> None:
    """Draw shapes in their own colours, or all in `value` (masks, shadows)."""
    line_type = cv2.LINE_AA if antialias else cv2.LINE_8
    for shape in shapes:
        kind, color = shape[0], (shape[-1] if value is None else value)
        if kind == "poly":
            points = np.round(shape[1] * (1 << _SHIFT)).astype(np.int32)
            cv2.fillPoly(image, [points], color, line_type, _SHIFT)
        elif kind == "ellipse":
            cv2.ellipse(image, _fixed(shape[1]), _fixed(shape[2]), 0, 0, 360, color, -1, line_type, _SHIFT)
        elif kind == "line":
            cv2.line(image, _fixed(shape[1]), _fixed(shape[2]), color, shape[3], line_type, _SHIFT)
        else:
            radius = int(round(shape[2] * (1 << _SHIFT)))
            cv2.circle(image, _fixed(shape[1]), radius, color, shape[3], line_type, _SHIFT)


class _Pen:
    """Collects shapes given in body coordinates: u forward, v up, in units of the figure's height."""

    def __init__(self, x: float, y: float, scale: float, facing: int = 1) -> None:
        self.x, self.y, self.scale, self.facing = x, y, scale, facing
        self.shapes: list[tuple] = []

    def at(self, u: float, v: float) -> tuple[float, float]:
        return self.x + self.facing * u * self.scale, self.y - v * self.scale

    def poly(self, points: list[tuple[float, float]], color: Color) -> None:
        self.shapes.append(("poly", np.array([self.at(u, v) for u, v in points]), color))

    def ellipse(self, center: tuple[float, float], ru: float, rv: float, color: Color) -> None:
        self.shapes.append(("ellipse", self.at(*center), (ru * self.scale, rv * self.scale), color))

    def line(self, p: tuple[float, float], q: tuple[float, float], width: float, color: Color) -> None:
        self.shapes.append(("line", self.at(*p), self.at(*q), max(1, round(width * self.scale)), color))

    def ring(self, center: tuple[float, float], radius: float, width: float, color: Color) -> None:
        self.shapes.append(("ring", self.at(*center), radius * self.scale, max(1, round(width * self.scale)), color))


def _gray(level: float, rng: np.random.Generator, tint: float = 0.05) -> Color:
    """A nearly neutral colour: the scene is mostly grayscale, like Ped2."""
    b, g, r = np.clip(level * (1.0 + rng.uniform(-tint, tint, 3)), 0, 255)
    return float(b), float(g), float(r)


def _shade(color: Color, factor: float) -> Color:
    b, g, r = (min(255.0, c * factor) for c in color)
    return b, g, r


@dataclass(frozen=True)
class _Look:
    """Clothes and skin of one person."""

    top: Color
    legs: Color
    skin: Color
    hair: Color
    backpack: Color | None

    @staticmethod
    def random(rng: np.random.Generator) -> _Look:
        backpack = _gray(rng.uniform(30, 110), rng) if rng.random() < 0.3 else None
        return _Look(top=_gray(rng.uniform(35, 215), rng), legs=_gray(rng.uniform(25, 130), rng),
                     skin=_gray(rng.uniform(115, 185), rng, 0.04), hair=_gray(rng.uniform(15, 85), rng),
                     backpack=backpack)


def _limb(start: tuple[float, float], angle: float, length: float) -> tuple[float, float]:
    """The end of a limb at `angle` from straight down (positive = forward)."""
    return start[0] + length * math.sin(angle), start[1] - length * math.cos(angle)


def _side_figure(pen: _Pen, phase: float, look: _Look, run: bool) -> None:
    """A person seen from the side: legs and arms swing in opposition over one gait cycle per 2*pi."""
    # Running: wider swings, knees and elbows bent more, leaning forward, a little flight phase.
    leg_amp, knee_amp, arm_amp, elbow_bend, lean = (0.8, 1.5, 0.95, 1.6, 0.2) if run else (0.42, 0.55, 0.4, 0.35, 0.03)
    hip_v = 0.5 * math.cos(leg_amp * abs(math.sin(phase))) + (0.04 * abs(math.cos(phase)) if run else 0.0)
    hip = (0.0, hip_v)
    shoulder = (lean * 0.3, hip_v + 0.29)

    def leg(p: float, color: Color) -> None:
        thigh = leg_amp * math.sin(p)
        knee = _limb(hip, thigh, 0.25)
        foot = _limb(knee, thigh - knee_amp * max(0.0, math.cos(p)), 0.25)
        pen.line(hip, knee, 0.085, color)
        pen.line(knee, foot, 0.075, color)
        pen.line(foot, (foot[0] + 0.06, foot[1]), 0.05, _shade(color, 0.6))

    def arm(p: float, color: Color) -> None:
        upper = arm_amp * math.sin(p)
        elbow = _limb(shoulder, upper, 0.16)
        pen.line(shoulder, elbow, 0.065, color)
        pen.line(elbow, _limb(elbow, upper + elbow_bend, 0.15), 0.055, _shade(look.skin, 0.85))

    far = 0.72  # limbs on the far side are in the body's shade
    arm(phase, _shade(look.top, far))
    leg(phase + math.pi, _shade(look.legs, far))
    leg(phase, look.legs)
    back, front = -0.075, 0.07
    torso = [(back, hip_v - 0.03), (front, hip_v - 0.03), (shoulder[0] + front + 0.01, shoulder[1]),
             (shoulder[0] + 0.02, shoulder[1] + 0.03), (shoulder[0] + back, shoulder[1])]
    pen.poly(torso, look.top)
    lit = -pen.facing  # the light comes from the image's left
    pen.poly([(0.0, hip_v - 0.03), (lit * 0.06, hip_v - 0.03), (shoulder[0] + lit * 0.065, shoulder[1]),
              (shoulder[0], shoulder[1] + 0.02)], _shade(look.top, 1.18))
    if look.backpack is not None:
        pen.poly([(back + 0.01, hip_v + 0.1), (back - 0.07, hip_v + 0.12), (back - 0.07, hip_v + 0.26),
                  (back + 0.01, hip_v + 0.28)], look.backpack)
    head = (shoulder[0] + 0.02, shoulder[1] + 0.12)
    pen.line(shoulder, head, 0.05, look.skin)
    pen.ellipse((head[0] - 0.012, head[1] + 0.01), 0.068, 0.075, look.hair)
    pen.ellipse((head[0] + 0.018, head[1] - 0.012), 0.05, 0.06, look.skin)
    arm(phase + math.pi, look.top)


def _front_figure(pen: _Pen, phase: float, look: _Look, toward: bool) -> None:
    """A person seen from the front (walking toward the camera) or the back: legs lift in turn."""
    sway = 0.012 * math.sin(phase)
    hip_v = 0.5 - 0.015 * abs(math.sin(phase))
    for side in (-1, 1):
        p = phase + (math.pi if side > 0 else 0.0)
        lift = 0.07 * max(0.0, math.sin(p))
        pen.line((sway + side * 0.045, hip_v), (sway + side * 0.05, lift), 0.09, look.legs)
        pen.ellipse((sway + side * 0.05, lift + 0.01), 0.04, 0.02, _shade(look.legs, 0.6))
    top = hip_v + 0.3
    pen.poly([(sway - 0.09, hip_v - 0.03), (sway + 0.09, hip_v - 0.03), (sway + 0.115, top), (sway + 0.03, top + 0.03),
              (sway - 0.03, top + 0.03), (sway - 0.115, top)], look.top)
    pen.poly([(sway - 0.09, hip_v - 0.03), (sway - 0.01, hip_v - 0.03), (sway - 0.01, top + 0.02),
              (sway - 0.115, top)], _shade(look.top, 1.18))
    if look.backpack is not None and not toward:
        pen.poly([(sway - 0.08, hip_v + 0.08), (sway + 0.08, hip_v + 0.08), (sway + 0.08, top - 0.02),
                  (sway - 0.08, top - 0.02)], look.backpack)
    for side in (-1, 1):
        swing = 0.04 * math.sin(phase + (0.0 if side > 0 else math.pi))
        hand = (sway + side * 0.15, hip_v + 0.02 + swing)
        pen.line((sway + side * 0.12, top - 0.02), hand, 0.065, _shade(look.top, 0.9))
        pen.ellipse(hand, 0.025, 0.025, look.skin)
    head = (sway, top + 0.11)
    pen.ellipse(head, 0.07, 0.078, look.hair)
    if toward:
        pen.ellipse((head[0], head[1] - 0.015), 0.055, 0.062, look.skin)


def _knee(hip: tuple[float, float], foot: tuple[float, float], length: float) -> tuple[float, float]:
    """Where the knee of a leg with two `length` segments goes so that it bends forward."""
    du, dv = foot[0] - hip[0], foot[1] - hip[1]
    d = min(math.hypot(du, dv), 2 * length - 1e-6)
    out = math.sqrt(max(length * length - d * d / 4, 0.0))
    mid = (hip[0] + du / 2, hip[1] + dv / 2)
    norm = math.hypot(du, dv) or 1.0
    normal = (-dv / norm, du / norm)
    if normal[0] < 0:
        normal = (-normal[0], -normal[1])
    return mid[0] + out * normal[0], mid[1] + out * normal[1]


def _wheel(pen: _Pen, center: tuple[float, float], radius: float, turn: float) -> None:
    tyre, hub = (28.0, 28.0, 30.0), (150.0, 152.0, 155.0)
    pen.ellipse(center, radius, radius, tyre)
    pen.ellipse(center, radius * 0.45, radius * 0.45, hub)
    pen.line(center, (center[0] + radius * 0.45 * math.cos(turn), center[1] + radius * 0.45 * math.sin(turn)),
             0.02, tyre)


def _car(pen: _Pen, distance: float, body: Color, glass: Color) -> None:
    """A small car, 1.5 person heights long: a shape no pedestrian has."""
    pen.poly([(-0.75, 0.12), (0.75, 0.12), (0.76, 0.34), (0.7, 0.41), (0.3, 0.45), (0.13, 0.7), (-0.45, 0.7),
              (-0.64, 0.46), (-0.76, 0.42)], body)
    pen.poly([(0.09, 0.66), (0.23, 0.47), (-0.05, 0.47), (-0.05, 0.66)], glass)
    pen.poly([(-0.11, 0.66), (-0.11, 0.47), (-0.57, 0.47), (-0.43, 0.66)], glass)
    pen.line((-0.08, 0.15), (-0.08, 0.45), 0.015, _shade(body, 0.6))
    pen.poly([(-0.75, 0.12), (0.75, 0.12), (0.75, 0.2), (-0.75, 0.2)], _shade(body, 0.7))
    pen.ellipse((0.72, 0.33), 0.035, 0.025, (235.0, 240.0, 240.0))
    for u in (-0.48, 0.5):
        _wheel(pen, (u, 0.13), 0.13, distance / (0.13 * pen.scale))


def _bike(pen: _Pen, distance: float, frame: Color, look: _Look) -> None:
    """A bike and its rider: two wheels, a frame and pedalling legs instead of a gait."""
    radius = 0.2
    rear, front, crank = (-0.33, radius), (0.33, radius), (0.0, 0.2)
    seat, bar = (-0.1, 0.56), (0.24, 0.62)
    turn = distance / (radius * pen.scale)
    spoke = (28.0, 28.0, 30.0)
    for hub in (rear, front):
        pen.ring(hub, radius, 0.035, spoke)
        for k in range(2):
            a = turn + k * math.pi / 2
            pen.line((hub[0] - radius * math.cos(a), hub[1] - radius * math.sin(a)),
                     (hub[0] + radius * math.cos(a), hub[1] + radius * math.sin(a)), 0.012, _shade(spoke, 3.0))
    for p, q in ((rear, crank), (crank, seat), (seat, rear), (seat, (0.22, 0.52)), ((0.22, 0.52), crank),
                 ((0.22, 0.52), front), ((0.22, 0.52), bar)):
        pen.line(p, q, 0.03, frame)
    hip, shoulder = (seat[0], seat[1] + 0.03), (0.1, 0.88)
    pedal_angle = distance / (0.35 * pen.scale)
    for k, color in ((1, _shade(look.legs, 0.72)), (0, look.legs)):
        a = pedal_angle + k * math.pi
        pedal = (crank[0] + 0.09 * math.cos(a), crank[1] + 0.09 * math.sin(a))
        knee = _knee(hip, pedal, 0.27)
        pen.line(hip, knee, 0.085, color)
        pen.line(knee, pedal, 0.075, color)
    pen.poly([(hip[0] - 0.06, hip[1] - 0.02), (hip[0] + 0.07, hip[1] - 0.02), (shoulder[0] + 0.06, shoulder[1]),
              (shoulder[0] - 0.07, shoulder[1] + 0.01)], look.top)
    elbow = (0.2, 0.72)
    pen.line(shoulder, elbow, 0.065, look.top)
    pen.line(elbow, bar, 0.055, look.skin)
    pen.ellipse((shoulder[0] + 0.04, shoulder[1] + 0.1), 0.068, 0.075, look.hair)
    pen.ellipse((shoulder[0] + 0.06, shoulder[1] + 0.09), 0.05, 0.06, look.skin)


def _cart(pen: _Pen, distance: float, body: Color, look: _Look) -> None:
    """A small utility cart with a canopy and a seated driver."""
    canopy = _shade(body, 0.75)
    pen.line((-0.5, 0.38), (-0.47, 0.86), 0.03, canopy)
    pen.line((0.36, 0.36), (0.3, 0.86), 0.03, canopy)
    pen.poly([(-0.58, 0.85), (0.36, 0.85), (0.33, 0.92), (-0.55, 0.92)], canopy)
    pen.poly([(-0.22, 0.38), (-0.05, 0.38), (-0.04, 0.64), (-0.2, 0.64)], look.top)
    pen.ellipse((-0.11, 0.73), 0.065, 0.072, look.hair)
    pen.poly([(-0.55, 0.1), (0.55, 0.1), (0.58, 0.3), (0.38, 0.37), (-0.3, 0.37), (-0.3, 0.55), (-0.4, 0.55),
              (-0.4, 0.4), (-0.55, 0.4)], body)
    pen.line((-0.55, 0.24), (0.57, 0.24), 0.02, _shade(body, 0.6))
    for u in (-0.36, 0.36):
        _wheel(pen, (u, 0.1), 0.1, distance / (0.1 * pen.scale))


def _object_shapes(center: tuple[float, float], size: float, angle: float, form: str, color: Color) -> list[tuple]:
    """A thrown bag, ball or bottle, spinning as it flies."""
    c, s = math.cos(angle), math.sin(angle)

    def rect(length: float, width: float, offset: float = 0.0) -> np.ndarray:
        corners = [(-length / 2 + offset, -width / 2), (length / 2 + offset, -width / 2),
                   (length / 2 + offset, width / 2), (-length / 2 + offset, width / 2)]
        return np.array([(center[0] + a * c - b * s, center[1] + a * s + b * c) for a, b in corners])

    if form == "bottle":
        return [("poly", rect(size * 1.3, size * 0.4), color),
                ("poly", rect(size * 0.4, size * 0.2, size * 0.8), color)]
    if form == "ball":
        highlight = (center[0] - size * 0.15, center[1] - size * 0.15)
        return [("ellipse", center, (size * 0.5, size * 0.5), color),
                ("ellipse", highlight, (size * 0.15, size * 0.15), _shade(color, 1.3))]
    return [("poly", rect(size, size * 0.75), color),
            ("poly", rect(size * 0.5, size * 0.75, -size * 0.25), _shade(color, 0.75))]


# --------------------------------------------------------------------------------------------------
# Actors: anything that moves through the scene during frames [t0, t1).


class _Actor:
    kind: str | None = None  # the anomaly kind, None for normal activity
    t0: int
    t1: int

    def depth(self, t: int) -> float:
        """The image row of the feet: nearer actors are drawn over farther ones."""
        raise NotImplementedError

    def shapes(self, t: int) -> list[tuple]:
        raise NotImplementedError

    def shadow(self, t: int) -> list[tuple]:
        return []


class _Person(_Actor):
    """A pedestrian moving in a straight line; `gait` is walk, run, toward or away (seen from the front)."""

    def __init__(self, scene: _Scene, t0: int, t1: int, start: tuple[float, float], velocity: tuple[float, float],
                 size: float, look: _Look, gait: str, phase: float, cadence: float, kind: str | None = None) -> None:
        self.scene, self.t0, self.t1, self.kind = scene, t0, t1, kind
        self.start, self.velocity, self.size, self.look = start, velocity, size, look
        self.gait, self.phase, self.cadence = gait, phase, cadence

    def _where(self, t: int) -> tuple[float, float, float]:
        x = self.start[0] + self.velocity[0] * (t - self.t0)
        y = self.start[1] + self.velocity[1] * (t - self.t0)
        return x, y, self.scene.person_height(y) * self.size

    def depth(self, t: int) -> float:
        return self._where(t)[1]

    def shapes(self, t: int) -> list[tuple]:
        x, y, h = self._where(t)
        phase = self.phase + self.cadence * (t - self.t0)
        if self.gait in ("walk", "run"):
            pen = _Pen(x, y, h, 1 if self.velocity[0] >= 0 else -1)
            _side_figure(pen, phase, self.look, self.gait == "run")
        else:
            pen = _Pen(x, y, h)
            _front_figure(pen, phase, self.look, self.gait == "toward")
        return pen.shapes

    def shadow(self, t: int) -> list[tuple]:
        x, y, h = self._where(t)
        return [("ellipse", (x + 0.1 * h, y + 0.01 * h), (0.2 * h, 0.04 * h), 0)]


class _Vehicle(_Actor):
    """A car, a bike or a cart riding along the walkway at constant speed."""

    kind = "vehicle"

    def __init__(self, scene: _Scene, t0: int, t1: int, x0: float, y: float, vx: float, size: float, form: str,
                 color: Color, look: _Look, rng: np.random.Generator) -> None:
        self.scene, self.t0, self.t1 = scene, t0, t1
        self.x0, self.y, self.vx, self.size, self.form, self.color, self.look = x0, y, vx, size, form, color, look
        self.glass = _gray(rng.uniform(40, 80), rng)

    def depth(self, t: int) -> float:
        return self.y

    def shapes(self, t: int) -> list[tuple]:
        distance = abs(self.vx) * (t - self.t0)
        pen = _Pen(self.x0 + self.vx * (t - self.t0), self.y, self.scene.person_height(self.y) * self.size,
                   1 if self.vx >= 0 else -1)
        if self.form == "car":
            _car(pen, distance, self.color, self.glass)
        elif self.form == "bike":
            _bike(pen, distance, self.color, self.look)
        else:
            _cart(pen, distance, self.color, self.look)
        return pen.shapes

    def shadow(self, t: int) -> list[tuple]:
        h = self.scene.person_height(self.y) * self.size
        half = {"car": 0.8, "bike": 0.5, "cart": 0.6}[self.form] * h
        return [("ellipse", (self.x0 + self.vx * (t - self.t0) + 0.1 * h, self.y + 0.01 * h), (half, 0.05 * h), 0)]


class _Thrown(_Actor):
    """A small object on a parabola: x linear in time, y quadratic (constant gravity)."""

    kind = "thrown_object"

    def __init__(self, t0: int, t1: int, xs: tuple[float, float], ys: tuple[float, float], rise: float, size: float,
                 spin: float, form: str, color: Color) -> None:
        self.t0, self.t1, self.xs, self.ys, self.rise = t0, t1, xs, ys, rise
        self.size, self.spin, self.form, self.color = size, spin, form, color

    def _where(self, t: int) -> tuple[float, float]:
        s = (t - self.t0) / max(1, self.t1 - 1 - self.t0)
        x = self.xs[0] + (self.xs[1] - self.xs[0]) * s
        y = self.ys[0] + (self.ys[1] - self.ys[0]) * s - 4.0 * self.rise * s * (1.0 - s)
        return x, y

    def depth(self, t: int) -> float:
        return self._where(t)[1]

    def shapes(self, t: int) -> list[tuple]:
        return _object_shapes(self._where(t), self.size, self.spin * (t - self.t0), self.form, self.color)


def _normal_walkers(scene: _Scene, preset: SynthPreset, n_frames: int, rng: np.random.Generator) -> list[_Actor]:
    """Pedestrians walking along the walkway in both directions, arriving at irregular intervals.

    Arrivals start well before frame 0, so the first frame already shows people mid-way.
    """
    walk = preset.walk_cross_frames
    gap = 2 * 1.25 * walk / preset.crowd  # per direction, so that about `crowd` people are in view
    walkers: list[_Actor] = []
    for facing in (1, -1):
        t = -2.2 * walk + rng.uniform(0, gap)
        while t < n_frames:
            y = rng.uniform(scene.lane_far, scene.lane_near)
            size = rng.uniform(0.88, 1.12)
            h = scene.person_height(y) * size
            speed = scene.walking_speed(y, walk) * rng.uniform(0.85, 1.15)
            x_from, x_to = -0.3 * h, scene.width + 0.3 * h
            if facing < 0:
                x_from, x_to = x_to, x_from
            frames = int(math.ceil((scene.width + 0.6 * h) / speed))
            y_to = float(np.clip(y + rng.uniform(-0.04, 0.04) * scene.height, scene.lane_far, scene.lane_near))
            t0 = int(round(t))
            if t0 + frames > 0:
                velocity = ((x_to - x_from) / frames, (y_to - y) / frames)
                walkers.append(_Person(scene, t0, t0 + frames, (x_from, y), velocity, size, _Look.random(rng), "walk",
                                       rng.uniform(0, 2 * math.pi), 2 * math.pi * speed / (0.75 * h)))
            t += gap * rng.uniform(0.4, 1.6)
    return walkers


def _anomaly(scene: _Scene, planned: PlannedEvent, rng: np.random.Generator) -> _Actor:
    """The actor of a planned anomaly: it enters view at `start` and leaves after `length` frames."""
    t0, t1, last = planned.start, planned.start + planned.length, planned.length - 1
    width, height = scene.width, scene.height
    facing = 1 if rng.random() < 0.5 else -1

    def across(half: float) -> tuple[float, float]:
        """Entry and exit x of something `half` wide crossing the image, so part of it is always in view."""
        x_from, x_to = -0.9 * half, width + 0.9 * half
        return (x_from, x_to) if facing > 0 else (x_to, x_from)

    if planned.kind == "running":
        y = rng.uniform(scene.lane_far + 0.2 * (scene.lane_near - scene.lane_far), scene.lane_near)
        size = rng.uniform(0.95, 1.1)
        h = scene.person_height(y) * size
        x_from, x_to = across(0.3 * h)
        vx = (x_to - x_from) / last
        return _Person(scene, t0, t1, (x_from, y), (vx, 0.0), size, _Look.random(rng), "run",
                       rng.uniform(0, 2 * math.pi), 2 * math.pi * abs(vx) / (1.3 * h), kind="running")

    if planned.kind == "vehicle":
        form = ("car", "bike", "cart")[int(rng.integers(3))]
        y = rng.uniform(scene.lane_far + 0.4 * (scene.lane_near - scene.lane_far), scene.lane_near)
        size = rng.uniform(0.95, 1.1)
        half = {"car": 0.76, "bike": 0.55, "cart": 0.58}[form] * scene.person_height(y) * size
        x_from, x_to = across(half)
        level = rng.uniform(25, 70) if rng.random() < 0.5 else rng.uniform(195, 240)
        return _Vehicle(scene, t0, t1, x_from, y, (x_to - x_from) / last, size, form, _gray(level, rng, 0.1),
                        _Look.random(rng), rng)

    if planned.kind == "thrown_object":
        size = rng.uniform(0.09, 0.11) * height
        x_from, x_to = across(0.6 * size)
        ys = (rng.uniform(0.35, 0.7) * height, rng.uniform(0.35, 0.7) * height)
        # The apex stays inside the image, so the object is in view the whole time.
        rise = min(rng.uniform(0.25, 0.45) * height, min(ys) - 0.6 * size)
        level = rng.uniform(215, 250) if rng.random() < 0.6 else rng.uniform(15, 45)
        form = ("bag", "ball", "bottle")[int(rng.integers(3))]
        return _Thrown(t0, t1, (x_from, x_to), ys, rise, size, facing * rng.uniform(0.25, 0.6), form,
                       _gray(level, rng, 0.08))

    # wrong_way: from the top edge down past the bottom one (or back up), across both grass strips.
    down = rng.random() < 0.5
    size = rng.uniform(0.95, 1.1)
    y_from, y_to = 1.0, height + 0.95 * scene.person_height(height) * size
    if not down:
        y_from, y_to = y_to, y_from
    x_from = rng.uniform(0.2, 0.8) * width
    x_to = float(np.clip(x_from + rng.uniform(-0.25, 0.25) * width, 0.1 * width, 0.9 * width))
    velocity = ((x_to - x_from) / last, (y_to - y_from) / last)
    mid_h = scene.person_height(0.5 * height) * size
    return _Person(scene, t0, t1, (x_from, y_from), velocity, size, _Look.random(rng), "toward" if down else "away",
                   rng.uniform(0, 2 * math.pi), 2 * math.pi * abs(velocity[1]) / (0.6 * mid_h), kind="wrong_way")


# --------------------------------------------------------------------------------------------------
# Rendering


def _render_video(scene: _Scene, background: tuple[np.ndarray, np.ndarray], actors: list[_Actor], n_frames: int,
                  rng: np.random.Generator, noise_sigma: float, frame_dir: Path,
                  mask_dir: Path | None) -> tuple[np.ndarray, list[tuple[str, list[int]]]]:
    """Write one video's frames (and masks); return its frame labels and each anomaly's visible frames.

    Anomalous objects are drawn last, over everyone else, so a non-empty mask always means the
    object can be seen.
    """
    frame_dir.mkdir(parents=True)
    if mask_dir is not None:
        mask_dir.mkdir(parents=True)
    gray, tint = background
    # Slow, mild lighting drift: a global gain following a long sine.
    t = np.arange(n_frames)
    gain = rng.uniform(0.94, 1.04) + rng.uniform(0.02, 0.05) * np.sin(2 * np.pi * t / rng.uniform(250, 600)
                                                                       + rng.uniform(0, 2 * np.pi))
    shape = (scene.height, scene.width)
    labels = np.zeros(n_frames, np.uint8)
    anomalies = [a for a in actors if a.kind is not None]
    visible: dict[int, list[int]] = {id(a): [] for a in anomalies}
    for f in range(n_frames):
        active = sorted((a for a in actors if a.t0 <= f < a.t1), key=lambda a: (a.kind is not None, a.depth(f)))
        shadows = np.zeros(shape, np.uint8)
        for actor in active:
            _draw(shadows, actor.shadow(f), 255)
        ground = np.rint(gray * (1.0 - _SHADOW_DEPTH / 255.0 * shadows.astype(np.float32)))
        canvas = np.clip(ground[..., None] + tint, 0, 255).astype(np.uint8)
        mask = np.zeros(shape, np.uint8)
        for actor in active:
            shapes = actor.shapes(f)
            _draw(canvas, shapes)
            if actor.kind is not None:
                own = np.zeros(shape, np.uint8)
                _draw(own, shapes, 255, antialias=False)
                if own.any():
                    visible[id(actor)].append(f)
                    mask |= own
        # Lighting and sensor noise change all channels alike, as in a nearly gray camera image.
        luma = canvas.mean(axis=2, dtype=np.float32)
        change = np.rint((gain[f] - 1.0) * luma + rng.normal(0.0, noise_sigma, shape)).astype(np.int16)
        frame = np.clip(canvas + change[..., None], 0, 255).astype(np.uint8)
        _write_png(frame_dir / f"{f:03d}.png", frame)
        if mask_dir is not None:
            _write_png(mask_dir / f"{f:03d}.png", mask)
        labels[f] = mask.any()
    return labels, [(a.kind, visible[id(a)]) for a in anomalies]


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image, _PNG):
        raise PseudovadError(f"could not write {path}; check the disk space and permissions")
