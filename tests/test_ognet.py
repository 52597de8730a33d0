"""OGNet: phase 1 trains an adversarial autoencoder, G_old is a frozen early copy, phase 2 trains D
alone on the pseudo-anomalies it claims, and the run trains, evaluates and resumes via the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pseudovad.checkpoint import load_checkpoint
from pseudovad.cli import main
from pseudovad.config import build_config
from pseudovad.data.cache import FrameArray
from pseudovad.data.clips import ClipDataset
from pseudovad.data.dataset import Video
from pseudovad.errors import ConfigError
from pseudovad.training import ognet as ognet_module
from pseudovad.training.ognet import BAD_KINDS, GOOD_KINDS, OGNetPipeline, kind_aucs
from pseudovad.training.thesis import ThesisPipeline

from helpers import moving_clips, tiny_pipeline


def tiny_ognet(iterations: int = 3, size: int = 24, train: dict | None = None, **ognet) -> OGNetPipeline:
    torch.manual_seed(0)
    config = build_config(
        {
            "pipeline": "ognet",
            "data": {"height": size, "width": size, "channels": 1},
            "ognet": {"width": 4, "old_at": 1, "phase2_iterations": 1, **ognet},
            "train": {"iterations": iterations, "precision": "fp32", **(train or {})},
        }
    )
    return OGNetPipeline(config, torch.device("cpu"))


def frames(batch: int = 4, size: int = 24) -> torch.Tensor:
    return torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def squares(batch: int, seed: int) -> torch.Tensor:
    """Dark 24x24 frames, each with a bright 6x6 square somewhere: a normal class that a tiny G
    learns to reconstruct in a hundred steps."""
    corners = torch.randint(0, 18, (batch, 2), generator=torch.Generator().manual_seed(seed))
    images = torch.full((batch, 1, 24, 24), -1.0)
    for image, (top, left) in zip(images, corners.tolist()):
        image[:, top : top + 6, left : left + 6] = 1.0
    return images


def random_clips(videos: int = 2, length: int = 10, size: int = 40) -> ClipDataset:
    """Clips of random frames: every patch of every frame differs from the others."""
    array = np.random.default_rng(0).integers(0, 256, (videos * length, size, size, 1), dtype=np.uint8)
    listed = [Video(f"{v:02d}", Path(f"{v:02d}"), length) for v in range(videos)]
    return ClipDataset(FrameArray(array, np.arange(videos + 1) * length, listed), 4)


def state(network: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in network.state_dict().items()}


def assert_same(first: dict, second: dict) -> None:
    for name, value in first.items():
        torch.testing.assert_close(second[name], value, msg=name)


def changed(before: dict, network: nn.Module) -> bool:
    return any(not torch.equal(before[name], value) for name, value in network.named_parameters())


def test_phase_one_generator_loss_combines_mse_and_adversarial():
    losses = tiny_ognet(reconstruction_weight=0.3, adversarial_weight=0.7).train_step({"frames": frames()})
    assert losses["phase"] == 1.0
    assert losses["generator"] == pytest.approx(0.3 * losses["reconstruction"] + 0.7 * losses["adversarial"], rel=1e-5)

    # Without noise every run sees the same D step, so G's gradient is the weighted sum of each term's.
    def generator_gradient(reconstruction: float, adversarial: float) -> list[torch.Tensor]:
        model = tiny_ognet(noise_std=0.0, reconstruction_weight=reconstruction, adversarial_weight=adversarial)
        model.train_step({"frames": frames()})
        return [p.grad for p in model.generator.parameters()]

    mse_only, adversarial_only = generator_gradient(1.0, 0.0), generator_gradient(0.0, 1.0)
    assert all(g.abs().sum() > 0 for g in mse_only) and all(g.abs().sum() > 0 for g in adversarial_only)
    for combined, mse, adversarial in zip(generator_gradient(0.5, 0.5), mse_only, adversarial_only):
        torch.testing.assert_close(combined, 0.5 * mse + 0.5 * adversarial, rtol=1e-4, atol=1e-7)


def test_old_generator_is_a_frozen_copy_taken_at_old_at():
    model = tiny_ognet(iterations=6, old_at=2, phase2_iterations=2)
    for _ in range(2):
        model.train_step({"frames": frames()})
    after_two_steps = state(model.generator)
    assert not model.has_old_generator
    model.train_step({"frames": frames()})
    assert model.has_old_generator
    assert_same(after_two_steps, model.old_generator.state_dict())
    model.train_step({"frames": frames()})
    assert_same(after_two_steps, model.old_generator.state_dict())
    assert changed(after_two_steps, model.generator)
    assert not any(p.requires_grad for p in model.old_generator.parameters())
    optimised = {id(p) for optimizer in model.optimizers.values() for group in optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in model.old_generator.parameters()}


def test_phase_two_updates_only_the_discriminator():
    model = tiny_ognet(iterations=3, old_at=1, phase2_iterations=1)
    for _ in range(2):
        assert model.train_step({"frames": frames()})["phase"] == 1.0
    generator, old_generator, discriminator = state(model.generator), state(model.old_generator), state(model.discriminator)
    losses = model.train_step({"frames": frames()})
    assert losses["phase"] == 2.0 and int(model.progress.phase) == 2
    assert set(losses) >= {"finetune_old", "finetune_pseudo", "finetune_new", "finetune_real"}
    assert_same(generator, model.generator.state_dict())  # parameters and BatchNorm statistics
    assert_same(old_generator, model.old_generator.state_dict())
    assert changed(discriminator, model.discriminator)
    assert all(p.requires_grad for p in model.discriminator.parameters())


def test_phase_two_shows_d_each_kind_with_its_label_in_the_authors_order(monkeypatch):
    """D's four batches in phase 2, in order: G_old(x) labelled fake, G(x) real, x real, the mixtures fake."""
    model = tiny_ognet(iterations=3, old_at=1, phase2_iterations=1)
    for _ in range(2):
        model.train_step({"frames": frames()})
    x = frames()
    torch.manual_seed(7)
    bad = model.pseudo_anomalies(x)
    expected = [bad["old"], model.reconstruct(x).float(), x, bad["pseudo"]]
    seen, labels = [], []
    judge = model.run_discriminator
    monkeypatch.setattr(model, "run_discriminator", lambda images: seen.append(images.detach().float()) or judge(images))
    bce = ognet_module._bce
    monkeypatch.setattr(ognet_module, "_bce", lambda logits, target: labels.append(target) or bce(logits, target))
    torch.manual_seed(7)
    assert model.train_step({"frames": x})["phase"] == 2.0
    assert labels == [0.0, 1.0, 1.0, 0.0]
    assert len(seen) == 4
    for got, want, kind in zip(seen, expected, ("old", "new", "real", "pseudo")):
        torch.testing.assert_close(got, want, msg=kind)


class Elementwise(nn.Module):
    """A fixed, non-linear 'generator', so mixing before or after it gives different images."""

    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


def test_pseudo_anomalies_are_the_claimed_mixtures_of_old_outputs():
    model = tiny_ognet()
    old, new = Elementwise(lambda x: x**3 + 0.1), Elementwise(lambda x: torch.tanh(3 * x))
    model.old_generator, model.generator = old, new
    x = frames(5)
    outputs = model.pseudo_anomalies(x)
    partners = outputs["partners"]
    assert sorted(partners.tolist()) == list(range(5))
    assert all(j != i for i, j in enumerate(partners.tolist()))
    torch.testing.assert_close(outputs["old"], old(x))
    torch.testing.assert_close(model.reconstruct(x), new(x))
    for i, j in enumerate(partners.tolist()):
        torch.testing.assert_close(outputs["pseudo"][i], new((old(x[i]) + old(x[j])) / 2))


def test_score_is_d_of_g_high_for_normal():
    model = tiny_ognet()
    model.train_step({"frames": frames()})
    clips = frames(3)[:, None].expand(3, 5, 1, 24, 24)  # the last frame of each clip is scored
    score = model.score(clips)["ognet"]
    model.generator.eval()
    model.discriminator.eval()
    with torch.no_grad():
        torch.testing.assert_close(score.sigmoid(), model.discriminator(model.generator(frames(3))))


def test_phase_two_teaches_d_to_rank_good_kinds_above_bad_kinds():
    """The guard of phase 2's direction: after it, D in eval mode (as it scores test frames) scores
    real frames and G_new(x) clearly above G_old(x) and the mixtures. With phase 2's labels swapped
    it fails, and without phase 2 too (phase 1 leaves D's eval-mode logits near 0 for every kind).
    The four kinds are weighted equally here so that each label counts (the authors' 0.001 on G_old
    would leave that one unchecked)."""
    model = tiny_ognet(iterations=200, old_at=30, phase2_iterations=100, finetune_lr=3e-4,
                       weight_old=1.0, weight_pseudo=1.0, weight_new=1.0, weight_real=1.0,
                       train={"lr_generator": 1e-3, "lr_discriminator": 1e-4})
    for step in range(200):
        model.train_step({"frames": squares(32, step)})
    assert int(model.progress.phase) == 2
    logits = model.kind_logits(squares(64, 999))
    means = {kind: round(value.mean().item(), 2) for kind, value in logits.items()}
    for good in GOOD_KINDS:
        for bad in BAD_KINDS:
            assert means[good] > means[bad] + 1.0, f"D's mean logit on {good} is not clearly above {bad}: {means}"
    assert kind_aucs(logits)["good_vs_bad"] > 0.95, means


def test_with_patches_each_training_sample_is_a_grid_patch_drawn_per_step():
    model = tiny_ognet(size=40, patches=20)
    clips = random_clips()
    indices = np.array([0, 3, 7, 11])
    grid = model.grid.cut(clips.batch(indices)[:, -1])

    def drawn(step: int) -> tuple[int, ...]:
        """Which grid patch of its clip's last frame each sample of the step's batch is."""
        patches = model.make_batch(clips, indices, step)["frames"]
        assert patches.shape == (4, 1, 20, 20)
        return tuple(next(p for p in range(len(model.grid)) if torch.equal(grid[i, p], patch)) for i, patch in enumerate(patches))

    assert drawn(5) == drawn(5)  # a resumed run draws the same patches
    assert len({drawn(step) for step in range(6)}) > 1


def test_with_patches_a_frame_scores_its_worst_patch():
    model = tiny_ognet(size=40, patches=20)
    model.train_step(model.make_batch(random_clips(), np.arange(4), step=0))
    clips = frames(3, size=40)[:, None].expand(3, 5, 1, 40, 40)
    score = model.score(clips)["ognet"]
    model.generator.eval()
    model.discriminator.eval()
    with torch.no_grad():
        for frame, value in zip(clips[:, -1], score):
            patches = torch.stack([frame[:, top : top + 20, left : left + 20] for top, left in [(0, 0), (0, 20), (20, 0), (20, 20)]])
            torch.testing.assert_close(value, model.discriminator.logits(model.generator(patches)).min())
    assert model.predict(clips).shape == (3, 1, 40, 40)
    assert all(image.shape == (3, 1, 40, 40) for image in model.sample_images({"clips": clips}).values())


@pytest.mark.parametrize("patches, problem", [(30, "larger than the 24x24"), (12, "at least 17x17")])
def test_patches_must_fit_the_frame_and_the_generator(patches, problem):
    with pytest.raises(ConfigError, match=problem):
        tiny_ognet(patches=patches)


def test_old_at_must_lie_in_phase_one():
    with pytest.raises(ConfigError, match="ognet.old_at"):
        tiny_ognet(iterations=10, old_at=8, phase2_iterations=2)


def ognet_mix_pipeline(kind: str = "two_branch") -> ThesisPipeline:
    return tiny_pipeline(kind, pseudo={"source": "ognet_mix"}, ognet={"width": 4, "old_at": 1, "phase2_iterations": 0},
                         train={"iterations": 4})


def test_ognet_mix_feeds_the_classifier_the_mixtures():
    model = ognet_mix_pipeline()
    assert model.pseudo is None
    assert {"ognet_generator", "ognet_old_generator", "ognet_discriminator", "ognet_progress"} <= set(model.networks)
    clips = moving_clips(2)
    clips[1] = clips[1].flip(-1)  # two different frames to mix

    before = state(model.classifier)
    losses = model.train_step({"clips": clips})
    assert "classifier" not in losses  # no pseudo-anomalies before G_old exists
    assert not changed(before, model.classifier)

    seen = []
    handle = model.classifier.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach().clone()))
    losses = model.train_step({"clips": clips})
    handle.remove()
    assert "classifier" in losses and "ognet/generator" in losses
    assert [len(batch) for batch in seen] == [2, 4]  # the mixtures, then real frames and B's predictions
    torch.testing.assert_close(seen[0], model.ognet.pseudo_anomalies(clips[:, -1])["pseudo"])
    assert changed(before, model.classifier)
    assert "pseudo-anomaly" in model.sample_images({"clips": clips})


def test_ognet_mix_needs_the_two_branch_pipeline():
    with pytest.raises(ConfigError, match="two_branch"):
        ognet_mix_pipeline("single_branch")


def test_ognet_mix_refuses_patches():
    with pytest.raises(ConfigError, match="ognet.patches"):
        tiny_pipeline("two_branch", pseudo={"source": "ognet_mix"}, ognet={"width": 4, "old_at": 1, "patches": 20})


# --- end to end through the command line -------------------------------------------------------

TINY_RUN = [
    "--set", "ognet.width=4", "--set", "ognet.old_at=1", "--set", "ognet.phase2_iterations=2",
    "--set", "train.batch_size=8", "--set", "train.checkpoint_every=2", "--set", "train.sample_every=2",
]


def train(tiny_data, out, *extra) -> int:
    return main(["train", "synthetic_ognet", "--data", str(tiny_data), "--out", str(out), *TINY_RUN, "--iterations", "4", *extra])


def test_train_then_evaluate_reports_the_ognet_score(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert train(tiny_data, run, "--evaluate") == 0
    results = json.loads((run / "results.json").read_text())
    assert set(results["auc"]) == {"ognet"}
    assert results["auc"]["ognet"]["micro"] is not None
    assert results["clip_length"] == 4
    saved = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert set(saved["networks"]) == {"generator", "old_generator", "discriminator", "progress"}
    assert int(saved["networks"]["progress"]["phase"]) == 2


def test_run_resumed_in_phase_two_matches_uninterrupted_run(tiny_data, tmp_path, monkeypatch):
    assert train(tiny_data, tmp_path / "straight") == 0

    # Interrupt (as Ctrl-C does) before the 4th step: phase 2 began at the 3rd.
    step = OGNetPipeline.train_step

    def interrupted(self, batch):
        if int(self.progress.iteration) == 3:
            raise KeyboardInterrupt
        return step(self, batch)

    monkeypatch.setattr(OGNetPipeline, "train_step", interrupted)
    assert train(tiny_data, tmp_path / "resumed") == 130  # Ctrl-C: checkpoint saved, the shell's status for SIGINT
    middle = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "latest.pt")
    assert middle["iteration"] == 3 and int(middle["networks"]["progress"]["phase"]) == 2
    monkeypatch.setattr(OGNetPipeline, "train_step", step)
    assert train(tiny_data, tmp_path / "resumed", "--resume") == 0

    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "latest.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "latest.pt")
    assert resumed["iteration"] == 4
    for network, values in straight["networks"].items():
        for name, value in values.items():
            torch.testing.assert_close(resumed["networks"][network][name], value, rtol=0, atol=0, msg=f"{network}.{name}")
