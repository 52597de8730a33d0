"""One contract for every registered pipeline, and what adding a method costs: a new objective and a
new pseudo-anomaly source are each one class and one registry line, with no edit anywhere else."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from pseudovad.checkpoint import load_checkpoint
from pseudovad.cli import main
from pseudovad.config import option
from pseudovad.pseudo_anomalies import PseudoClips, Source, SourceOptions
from pseudovad.registry import OBJECTIVES, PIPELINES, SOURCES
from pseudovad.training.objectives import Objective, ObjectiveOptions
from pseudovad.training.pipelines import build_pipeline

from helpers import TINY_SET, tiny_config
from test_not_to_predict import numbered_clips

# What each pipeline needs besides the tiny sizes to run a few steps (OGNet: G_old and phase 2 early).
EXTRA = {
    "ognet": {"ognet": {"width": 4, "old_at": 1, "phase2_iterations": 1}, "train": {"iterations": 3, "batch_size": 4}},
}


@pytest.mark.parametrize("name", PIPELINES.names())
def test_every_pipeline_keeps_the_contract(name):
    config = tiny_config(name, **EXTRA.get(name, {}))
    torch.manual_seed(0)
    pipeline = build_pipeline(config, torch.device("cpu"))
    clips = numbered_clips()
    for step in range(3):
        losses = pipeline.train_step(pipeline.make_batch(clips, np.arange(4) + 7 * step, step))
        assert losses and all(np.isfinite(value) for value in losses.values()), losses

    sample = clips.batch(np.array([0, 20, 30]))
    scores = pipeline.score(sample)
    assert set(scores) == {score.name for score in pipeline.scores}
    assert all(value.shape == (3,) and torch.isfinite(value).all() for value in scores.values())
    fusion = pipeline.fused()
    assert fusion is None or set(fusion.parts) <= set(scores)
    images = pipeline.sample_images(pipeline.sample_batch(clips, np.array([0, 20, 30])))
    assert images and all(image.shape == (3, 1, 32, 32) for image in images.values())

    restored = build_pipeline(config, torch.device("cpu"), training=False)
    restored.load_state(pipeline.state(), with_optimizers=False)
    again = restored.score(sample)
    assert all(torch.allclose(scores[key], again[key]) for key in scores)
    assert set(pipeline.state()["optimizers"]) == set(pipeline.optimizers)


@SOURCES.register("test_mirror")
class Mirror(Source):
    """A test source: inputs mirrored left to right, the real next frame as target."""

    @dataclass
    class Options(SourceOptions):
        pass

    def make(self, clips, indices, rng) -> PseudoClips:
        normal = clips.batch(indices)
        return PseudoClips(clips=torch.cat([normal[:, :-1].flip(-1), normal[:, -1:]], 1), abnormal=normal[:, -1].flip(-1))


@OBJECTIVES.register("test_heavier_intensity")
class HeavierIntensity(Objective):
    """A test objective: FFP's with the intensity term scaled."""

    @dataclass
    class Options(ObjectiveOptions):
        scale: float = option(2.0, above=0.0)

    def term_weights(self) -> dict[str, float]:
        return {**super().term_weights(), "intensity": self.options.scale * super().term_weights()["intensity"]}


def generator_after(out) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "checkpoints" / "latest.pt")["networks"]["generator"]


def test_a_new_objective_and_a_new_source_train_from_a_config_alone(tiny_data, tmp_path, monkeypatch):
    """Each addition is chosen by the config alone, and it changes what the predictor learns: the same
    seed without it ends on other parameters (an addition that was parsed but never used would not)."""
    made = []
    make = Mirror.make
    monkeypatch.setattr(Mirror, "make", lambda self, clips, indices, rng: made.append(len(indices)) or make(self, clips, indices, rng))
    base = ["train", "synthetic_ffp", "--data", str(tiny_data), *TINY_SET, "--iterations", "3"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert main([*base, "--out", str(tmp_path / "objective"), "--set", "objective={name: test_heavier_intensity, scale: 3}"]) == 0
    objective = load_checkpoint(tmp_path / "objective" / "checkpoints" / "latest.pt")["config"]["objective"]
    assert objective == {"name": "test_heavier_intensity", "scale": 3.0}
    sources = "objective={name: learn_not_to_predict, probability: 1.0, sources: [{name: test_mirror}]}"
    assert main([*base, "--out", str(tmp_path / "source"), "--set", sources]) == 0
    assert made and all(count > 0 for count in made), made
    plain = generator_after(tmp_path / "plain")
    for variant in ("objective", "source"):
        trained = generator_after(tmp_path / variant)
        assert any(not torch.equal(trained[name], value) for name, value in plain.items()), f"{variant} trained as plain FFP"
    assert main([*base, "--out", str(tmp_path / "typo"), "--set", "objective={name: test_heavier_intensity, scael: 3}"]) == 2
