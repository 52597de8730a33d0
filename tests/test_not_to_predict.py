"""Learning not to predict: every source makes clips of the right shape whose target is a real frame,
the pseudo-anomalies' loss reaches the predictor and nothing else, the learned perturbation stays in
its bound, and a run is deterministic per seed and resumes bit-identically."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pseudovad.checkpoint import load_checkpoint
from pseudovad.cli import main
from pseudovad.config import component
from pseudovad.data.cache import FrameArray
from pseudovad.data.clips import ClipDataset
from pseudovad.data.dataset import Video
from pseudovad.registry import SOURCES

from helpers import TINY_SET, tiny_pipeline

ALL_SOURCES = [
    {"name": "skip_frames", "strides": [2, 3]},
    {"name": "skip_frames", "strides": [4], "target": "clip"},
    {"name": "reverse"},
    {"name": "reverse", "target": "next"},
    {"name": "repeat"},
    {"name": "patch"},
    {"name": "cuboid"},
    {"name": "cuboid", "mode": "reverse"},
    {"name": "cuboid", "mode": "freeze"},
    {"name": "cuboid", "place": "moving"},
    {"name": "adversarial", "width": 2},
]


def numbered_clips(videos: int = 2, frames: int = 30, size: int = 32) -> ClipDataset:
    """Frame k of the whole set (over both videos) is a flat image of grey level 4k: a frame's value names it."""
    total = videos * frames
    array = (np.arange(total, dtype=np.uint8) * 4).reshape(total, 1, 1, 1).repeat(size, 1).repeat(size, 2)
    listed = [Video(f"{v:02d}", Path(f"{v:02d}"), frames) for v in range(videos)]
    return ClipDataset(FrameArray(array, np.arange(videos + 1) * frames, listed), 4)


def frame_numbers(images: torch.Tensor) -> torch.Tensor:
    """The frame each flat image is (its grey level / 4), or -1 where the image is not one flat frame."""
    levels = ((images + 1) * 127.5).round()
    flat = (levels == levels.flatten(-3)[..., :1, None, None]).flatten(-3).all(-1)
    return torch.where(flat, levels.flatten(-3)[..., 0] / 4, torch.full_like(levels.flatten(-3)[..., 0], -1))


def model(*sources: dict, probability: float = 1.0, **loss):
    objective = {"name": "learn_not_to_predict", "probability": probability, "sources": list(sources)}
    return tiny_pipeline("ffp", objective=objective, loss={"adversarial": 0.05, **loss})


@pytest.mark.parametrize("options", ALL_SOURCES, ids=lambda o: f"{o['name']}-{o.get('target', o.get('strides', ''))}")
def test_every_source_makes_clips_whose_target_is_a_real_frame(options):
    clips = numbered_clips()
    source = SOURCES.get(options["name"])(component(SOURCES, **options), tiny_pipeline().config)
    indices = np.array([0, 10, 25, 26, 51])  # clips near both ends of both videos (26 clips each)
    made = source.make(clips, indices, np.random.default_rng(0))
    assert made.clips.shape == (5, 5, 1, 32, 32) and made.abnormal.shape == (5, 1, 32, 32)
    targets = frame_numbers(made.clips[:, -1])
    assert (targets >= 0).all(), "a target is not a real frame"
    videos = torch.from_numpy(clips.video_bounds[indices, 0] // 30)
    assert torch.equal(targets.long() // 30, videos), "a target comes from another video"
    if options["name"] not in ("patch", "adversarial", "cuboid"):
        inputs = frame_numbers(made.clips[:, :-1])
        normal = inputs.new_tensor([[clips.starts[i] + j for j in range(4)] for i in indices])
        assert (inputs >= 0).all() and (inputs != normal).flatten(1).any(-1).all(), "a clip was left as it was"
        steps, choice = inputs.diff(dim=1), getattr(source.options, "target", "clip")
        if options["name"] == "skip_frames":  # every k-th frame, k one of the strides; `clip`: the frame after s..s+3
            assert ((steps == steps[:, :1]) & torch.isin(steps[:, :1], torch.tensor(options["strides"]).float())).all()
            expected = inputs[:, -1] + 1 if choice == "next" else inputs[:, 0] + 4
        elif options["name"] == "reverse":  # s+3 .. s; `clip`: s+4
            assert (steps == -1).all()
            expected = inputs[:, -1] + 1 if choice == "next" else inputs[:, 0] + 1
        else:  # repeat: s+3 four times, then s+4
            assert (steps == 0).all()
            expected = inputs[:, 0] + 1
        assert torch.equal(targets, expected), f"target {choice}: {targets.tolist()}, not {expected.tolist()}"
        step = steps[:, -1] if options["name"] != "reverse" else -torch.ones_like(steps[:, -1])
        abnormal = inputs[:, -1] + step  # where the rearranged motion goes next (repeat: stays)
        assert torch.equal(frame_numbers(made.abnormal), abnormal), "the abnormal continuation"
    else:  # the input is changed in place: the target is the clip's own
        assert torch.equal(made.clips[:, -1], clips.batch(indices)[:, -1])
    if options["name"] == "cuboid":  # a box of other times, the rest of the inputs as they were
        inputs = made.clips[:, :-1]
        normal = clips.batch(indices)[:, :-1]
        changed = (inputs != normal).flatten(2).any(-1)
        assert changed.any() and (inputs == normal).flatten(2).any(-1).all()
    if options["name"] == "patch":
        assert (frame_numbers(made.clips[:, :-1]) == -1).all(), "every input should carry the patch"
        assert (frame_numbers(made.abnormal) == -1).all()


def test_a_cuboid_placed_on_motion_holds_the_moving_object():
    """One bright square walks across a still frame: `place: moving` puts the too-fast box on the
    square's path every time, where a box drawn anywhere mostly holds still background."""
    frames = np.zeros((60, 32, 32, 1), dtype=np.uint8)
    for k in range(60):
        frames[k, 4:8, (k % 30) // 2 + 4 : (k % 30) // 2 + 8] = 200  # rows 4-7, moving right
    listed = [Video(f"{v:02d}", Path(f"{v:02d}"), 30) for v in range(2)]
    clips = ClipDataset(FrameArray(frames, np.array([0, 30, 60]), listed), 4)
    indices = np.arange(0, 50, 2)

    def changed_fraction(place: str) -> float:
        options = component(SOURCES, name="cuboid", size=[0.3, 0.3], border=0.0, place=place)
        made = SOURCES.get("cuboid")(options, tiny_pipeline().config).make(clips, indices, np.random.default_rng(0))
        return float((made.clips[:, :-1] != clips.batch(indices)[:, :-1]).flatten(1).any(-1).float().mean())

    assert changed_fraction("moving") == 1.0
    assert changed_fraction("anywhere") < 0.5


def test_a_patch_cut_on_motion_holds_the_donors_moving_object():
    """The same walking square: `cut: moving` cuts the donor patch around it every time, where a patch
    cut anywhere mostly holds the still, black background."""
    frames = np.zeros((60, 32, 32, 1), dtype=np.uint8)
    for k in range(60):
        frames[k, 20:24, (k % 30) // 2 + 4 : (k % 30) // 2 + 8] = 200
    listed = [Video(f"{v:02d}", Path(f"{v:02d}"), 30) for v in range(2)]
    clips = ClipDataset(FrameArray(frames, np.array([0, 30, 60]), listed), 4)
    rng = np.random.default_rng(0)

    def holding_the_square(cut: str) -> float:
        source = SOURCES.get("patch")(component(SOURCES, name="patch", cut=cut), tiny_pipeline().config)
        patches = [source._donor_patch(clips, int(i), 8, 8, rng) for i in rng.integers(len(clips), size=40)]
        return float(np.mean([patch.max().item() > 0 for patch in patches]))

    assert holding_the_square("moving") == 1.0
    assert holding_the_square("anywhere") < 0.5


def test_the_pseudo_anomalies_loss_reaches_the_predictor_and_nothing_else():
    pipeline = model(*[o for o in ALL_SOURCES if o["name"] in ("skip_frames", "patch", "adversarial")])
    objective = pipeline.objective
    batch = objective.prepare(objective.make_batch(numbered_clips(), np.array([0, 10, 25, 40]), step=0))
    assert bool((batch["source"] >= 0).all())
    prediction = pipeline.run_generator(batch["clips"])
    terms = objective.terms(batch, prediction)
    pseudo = terms["pseudo_intensity"] + terms["pseudo_gradient"]
    others = [*pipeline.discriminator.parameters(), *(p for n in objective.networks.values() for p in n.parameters())]
    assert all(g is None for g in torch.autograd.grad(pseudo, others, retain_graph=True, allow_unused=True))
    grads = torch.autograd.grad(pseudo, list(pipeline.generator.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    # No normal sample in the batch: the normal terms are zero and send nothing.
    assert all(terms[name].item() == 0 for name in ("intensity", "gradient", "adversarial"))
    # And a training step on this all-pseudo batch moves the predictor: the pseudo terms are weighted in.
    weights = objective.term_weights()
    assert weights["pseudo_intensity"] > 0 and weights["pseudo_gradient"] > 0
    before = [p.detach().clone() for p in pipeline.generator.parameters()]
    pipeline.train_step(pipeline.make_batch(numbered_clips(), np.array([0, 10, 25, 40]), step=0))
    assert any(not torch.equal(a, b) for a, b in zip(before, pipeline.generator.parameters()))


def test_the_discriminator_learns_from_normal_samples_only():
    pipeline = model({"name": "skip_frames"}, probability=0.5)
    objective = pipeline.objective
    batch = objective.make_batch(numbered_clips(), np.array([0, 10, 25, 40]), step=3)
    prediction = pipeline.run_generator(batch["clips"]).detach()
    pseudo = batch["source"] >= 0
    assert 0 < int(pseudo.sum()) < 4, "seed the draw so the batch holds both kinds"
    assert pipeline.discriminator.training and any(isinstance(m, torch.nn.BatchNorm2d) for m in pipeline.discriminator.modules())
    loss = objective.discriminator_loss(batch, prediction)
    changed_pseudo, changed_normal = prediction.clone(), prediction.clone()
    changed_pseudo[pseudo] = torch.rand_like(changed_pseudo[pseudo])
    changed_normal[~pseudo] = torch.rand_like(changed_normal[~pseudo])
    assert objective.discriminator_loss(batch, changed_pseudo) == loss
    assert objective.discriminator_loss(batch, changed_normal) != loss


def test_the_normal_terms_send_nothing_to_the_pseudo_anomalies_predictions():
    """In training mode, with D's BatchNorm computing batch statistics: intensity, gradient and the
    adversarial term give no gradient to the rows of pseudo-anomalies, and the pseudo terms none to
    the normal rows."""
    pipeline = model({"name": "skip_frames"}, probability=0.5)
    objective = pipeline.objective
    batch = objective.make_batch(numbered_clips(), np.array([0, 10, 25, 40]), step=3)
    pseudo = batch["source"] >= 0
    assert 0 < int(pseudo.sum()) < 4 and pipeline.discriminator.training
    prediction = pipeline.run_generator(batch["clips"]).detach().requires_grad_(True)
    terms = objective.terms(batch, prediction)
    assert objective.term_weights()["adversarial"] > 0
    for name, untouched in (("intensity", pseudo), ("gradient", pseudo), ("adversarial", pseudo),
                            ("pseudo_intensity", ~pseudo), ("pseudo_gradient", ~pseudo)):
        (grad,) = torch.autograd.grad(terms[name], prediction, retain_graph=True)
        assert grad[untouched].abs().max() == 0, name
        assert grad[~untouched].abs().max() > 0, name


def test_the_learned_perturbation_stays_in_its_bound():
    source = SOURCES.get("adversarial")(component(SOURCES, "adversarial", amplitude=0.3, area=0.1, width=2),
                                        tiny_pipeline().config)
    for parameter in source.generator.parameters():  # a G pushed to its limits
        torch.nn.init.normal_(parameter, std=5.0)
    made = source.make(numbered_clips(), np.arange(6) * 9, np.random.default_rng(1))
    change = source.perturbation(made.clips, made.mask).detach()
    assert change.abs().max() <= 0.3 + 1e-6
    assert (change.abs() <= 0.3 * made.mask.unsqueeze(1) + 1e-6).all()
    covered = (made.mask > 0).flatten(1).float().mean(1)
    assert (covered <= 0.1 + 1e-6).all() and (covered > 0).all()
    perturbed = source.perturb(made.clips, made.mask)
    assert perturbed.min() >= -1 and perturbed.max() <= 1


def test_a_sized_perturbation_has_its_size_whatever_g_outputs():
    """size > 0: G's change of every frame has that RMS inside its box even where G has shrunk its output
    to almost nothing (the free G's optimum), so it cannot leave the last input (and the continuation)
    unchanged; the amplitude bound still holds where G saturates."""
    source = SOURCES.get("adversarial")(component(SOURCES, "adversarial", amplitude=0.4, area=0.2, width=2, size=0.3),
                                        tiny_pipeline().config)
    made = source.make(numbered_clips(), np.arange(6) * 9, np.random.default_rng(1))
    box = made.mask.unsqueeze(1).expand_as(made.clips)  # the smooth box, per frame
    dims = (2, 3, 4)
    for std in (1e-4, 0.1):  # a G shrunk to almost nothing, and a moderate one
        for parameter in source.generator.parameters():
            torch.nn.init.normal_(parameter, std=std)
        change = source.perturbation(made.clips, made.mask).detach()
        g_change = torch.where(box > 0, change / (0.4 * box.clamp_min(1e-12)), 0.0)  # before the box and amplitude
        rms = ((g_change.square() * box).sum(dims) / box.sum(dims)).sqrt()
        assert rms == pytest.approx(torch.full((6, 5), 0.3), rel=1e-3)
    for parameter in source.generator.parameters():  # saturated: the clamp keeps the bound
        torch.nn.init.normal_(parameter, std=5.0)
    assert (source.perturbation(made.clips, made.mask).detach().abs() <= 0.4 * box + 1e-6).all()


def test_g_sees_the_inputs_only_and_its_continuation_is_the_last_inputs_change():
    """The change of the target frame is the last input's, carried on; G never sees the target, so a
    clip with another target gets the same perturbation (it cannot hide the target in the inputs)."""
    source = SOURCES.get("adversarial")(component(SOURCES, "adversarial", amplitude=0.5, area=0.3, width=2),
                                        tiny_pipeline().config)
    for parameter in source.generator.parameters():
        torch.nn.init.normal_(parameter, std=1.0)
    made = source.make(numbered_clips(), np.arange(4) * 9, np.random.default_rng(2))
    change = source.perturbation(made.clips, made.mask).detach()
    assert change.abs().amax() > 0.05 and torch.equal(change[:, -1], change[:, -2])
    other_target = made.clips.clone()
    other_target[:, -1] = -made.clips[:, -1]
    assert torch.equal(source.perturbation(other_target, made.mask).detach(), change)


def test_the_adversarial_source_changes_the_inputs_and_the_target_stays_clean():
    """The predictor learns the clean frame from G's perturbed inputs; G's perturbed target frame is
    only the abnormal continuation (until 2026-12-01 the target was perturbed too)."""
    pipeline = model({"name": "adversarial", "amplitude": 1.0, "area": 0.5, "width": 2})
    for parameter in pipeline.objective.sources[0].generator.parameters():  # a G that visibly changes things
        torch.nn.init.normal_(parameter, std=1.0)
    batch = pipeline.objective.prepare(pipeline.make_batch(numbered_clips(), np.arange(4), step=1))
    assert bool((batch["source"] == 0).all())
    assert torch.equal(batch["clips"][:, -1], batch["clean"][:, -1])
    assert (batch["clips"][:, :-1] - batch["clean"][:, :-1]).abs().amax() > 0.05
    # The batch the predictor trains on keeps the bound: amplitude 1 times the smooth box, nothing outside it.
    assert ((batch["clips"] - batch["clean"]).abs() <= batch["mask"].unsqueeze(1) + 1e-6).all()
    assert (batch["abnormal"] - batch["clean"][:, -1]).abs().amax() > 0.05


def test_the_adversarial_source_learns_and_the_predictor_does_not_from_its_loss():
    """Nor do the predictor's BatchNorm statistics move (with generator.norm: batch) on G's step."""
    objective = {"name": "learn_not_to_predict", "probability": 1.0, "sources": [{"name": "adversarial", "width": 2}]}
    pipeline = tiny_pipeline("ffp", objective=objective, loss={"adversarial": 0.05}, generator={"norm": "batch"})
    objective = pipeline.objective
    generator = objective.sources[0].generator
    batch = objective.prepare(objective.make_batch(numbered_clips(), np.array([0, 10, 25, 40]), step=0))
    before_g = [p.clone() for p in generator.parameters()]
    before_p = [p.clone() for p in [*pipeline.generator.parameters(), *pipeline.generator.buffers()]]
    assert len(before_p) > len(list(pipeline.generator.parameters()))  # it has running statistics
    logged = objective.after_update(batch)
    assert "adversarial_generator" in logged
    assert any(not torch.equal(a, b) for a, b in zip(before_g, generator.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before_p, [*pipeline.generator.parameters(), *pipeline.generator.buffers()]))
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in pipeline.generator.parameters())


def test_the_same_seed_gives_the_same_batches_and_another_seed_others():
    clips, indices = numbered_clips(), np.arange(8)
    objective = model({"name": "skip_frames"}, {"name": "patch"}, probability=0.5).objective
    first, again = objective.make_batch(clips, indices, step=7), objective.make_batch(clips, indices, step=7)
    assert all(torch.equal(first[k], again[k]) for k in first)
    other = objective.make_batch(clips, indices, step=8)
    assert not torch.equal(first["clips"], other["clips"])
    objective = {"name": "learn_not_to_predict", "probability": 0.5, "sources": [{"name": "skip_frames"}, {"name": "patch"}]}
    reseeded = tiny_pipeline("ffp", objective=objective, loss={"adversarial": 0.05}, train={"seed": 1}).objective
    assert not torch.equal(first["clips"], reseeded.make_batch(clips, indices, step=7)["clips"])


def train(data: Path, out: Path, *extra: str) -> int:
    sources = "[{name: skip_frames}, {name: reverse}, {name: patch}, {name: adversarial, width: 2}]"
    return main(["train", "synthetic_ffp", "--data", str(data), "--out", str(out), *TINY_SET,
                 "--set", f"objective={{name: learn_not_to_predict, probability: 0.5, hinge_weight: 0.1, margin: 0.05, sources: {sources}}}",
                 "--set", "train.checkpoint_every=2", "--set", "train.sample_every=2", "--set", "train.gallery_at=[4]", *extra])


def test_a_run_is_deterministic_per_seed_and_resumes_bit_identically(tiny_data, tmp_path):
    assert train(tiny_data, tmp_path / "straight", "--iterations", "4") == 0
    assert train(tiny_data, tmp_path / "again", "--iterations", "4") == 0
    assert train(tiny_data, tmp_path / "resumed", "--iterations", "2") == 0
    assert train(tiny_data, tmp_path / "resumed", "--iterations", "4", "--resume") == 0
    straight, again, resumed = (load_checkpoint(tmp_path / run / "checkpoints" / "latest.pt")
                                for run in ("straight", "again", "resumed"))
    assert set(straight["networks"]) == {"generator", "discriminator", "objective_adversarial_generator"}
    for network, values in straight["networks"].items():
        for name, value in values.items():
            assert torch.equal(again["networks"][network][name], value), f"{network}.{name} differs between two runs"
            assert torch.equal(resumed["networks"][network][name], value), f"{network}.{name} differs after resume"
    gallery = tmp_path / "straight" / "gallery" / "step_000004.png"
    assert gallery.stat().st_size > 5000  # one column pair per source


def critic_targets(pipeline, batch: dict, monkeypatch) -> torch.Tensor:
    """The labels the critic's loss compares its logits with in one training step (1 = pseudo-anomaly)."""
    seen = []
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    monkeypatch.setattr(torch.nn.functional, "binary_cross_entropy_with_logits",
                        lambda logits, target, **options: seen.append(target.clone()) or bce(logits, target, **options))
    pipeline.train_step(batch)
    monkeypatch.undo()
    assert len(seen) == 1, "one critic loss per step"
    return seen[0]


def test_the_critic_learns_pseudo_anomalies_and_adds_a_fused_score():
    pipeline = model({"name": "cuboid"}, probability=0.5)
    assert [s.name for s in pipeline.scores] == ["psnr"] and pipeline.fused() is None
    critic = {"enabled": True, "width": 4, "fusion_weight": 0.7}
    pipeline = tiny_pipeline("ffp", objective={"name": "learn_not_to_predict", "probability": 0.5,
                                               "sources": [{"name": "cuboid"}], "critic": critic})
    assert [s.name for s in pipeline.scores] == ["psnr", "classifier"]
    assert pipeline.fused().parts == ("psnr", "classifier") and pipeline.fused().weight == 0.7
    clips = numbered_clips()
    critic_net = pipeline.objective.critic
    before = [p.clone() for p in critic_net.parameters()]
    batch = pipeline.make_batch(clips, np.arange(4), step=1)
    assert 0 < int((batch["source"] >= 0).sum()) < 4, "seed the draw so the batch holds both kinds"
    assert torch.equal(critic_targets(pipeline, batch, pytest.MonkeyPatch()), (batch["source"] >= 0).float())
    assert any(not torch.equal(a, b) for a, b in zip(before, critic_net.parameters()))
    scores = pipeline.score(clips.batch(np.arange(3)))
    assert scores["classifier"].shape == (3,) and ((scores["classifier"] >= 0) & (scores["classifier"] <= 1)).all()
    assert "objective_critic" in pipeline.networks and "objective_critic" in pipeline.optimizers


def test_the_critic_can_learn_from_clips_that_end_as_a_test_anomaly_does():
    """With last_frame continuation a pseudo-anomalous clip ends in its abnormal continuation (the
    pasted patch still there), as a real anomaly's clip does at test time; normal clips are unchanged."""
    def critic_clips(last_frame):
        critic = {"enabled": True, "width": 4, "last_frame": last_frame}
        pipeline = tiny_pipeline("ffp", objective={"name": "learn_not_to_predict", "probability": 0.5,
                                                   "sources": [{"name": "patch"}], "critic": critic})
        batch = pipeline.make_batch(numbered_clips(), np.arange(8), step=3)
        return batch, pipeline.objective._critic_clips(batch)

    batch, seen = critic_clips("continuation")
    pseudo = batch["source"] >= 0
    assert 0 < int(pseudo.sum()) < 8
    assert torch.equal(seen[:, :-1], batch["clips"][:, :-1]) and torch.equal(seen[:, -1], batch["abnormal"])
    assert torch.equal(seen[~pseudo], batch["clips"][~pseudo])
    assert not torch.equal(seen[pseudo, -1], batch["clips"][pseudo, -1])  # the patch did not vanish
    batch, seen = critic_clips("target")
    assert torch.equal(seen, batch["clips"])


def test_the_critic_can_learn_from_a_batch_of_its_own_while_the_predictor_sees_only_normal_clips():
    """critic.probability: the critic's own batch holds pseudo-anomalies at its share, drawn after the
    predictor's batch, which stays as it was; at objective probability 0 the predictor sees real clips only."""
    def pipeline(probability, critic_probability):
        critic = {"enabled": True, "width": 4, "probability": critic_probability}
        return tiny_pipeline("ffp", objective={"name": "learn_not_to_predict", "probability": probability,
                                               "sources": [{"name": "cuboid"}, {"name": "patch"}], "critic": critic})

    clips, indices = numbered_clips(), np.arange(8)
    own = pipeline(0.3, 0.5).make_batch(clips, indices, step=5)
    shared = pipeline(0.3, None).make_batch(clips, indices, step=5)
    assert set(shared) == {k for k in own if not k.startswith("critic/")}
    assert all(torch.equal(own[k], shared[k]) for k in shared)

    model_ffp = pipeline(0.0, 0.5)
    batch = model_ffp.make_batch(clips, indices, step=5)
    assert (batch["source"] < 0).all() and torch.equal(batch["clips"], clips.batch(indices))
    # The critic learns its own batch, pseudo-anomalies among them, while the predictor's holds none.
    own_labels = (batch["critic/source"] >= 0).float()
    assert 0 < int(own_labels.sum()) < 8
    assert torch.equal(critic_targets(model_ffp, batch, pytest.MonkeyPatch()), own_labels)
    assert 0 < int((batch["critic/source"] >= 0).sum()) < 8
    critic_net = model_ffp.objective.critic
    before = [p.clone() for p in critic_net.parameters()]
    assert "critic" in model_ffp.train_step(batch)
    assert any(not torch.equal(a, b) for a, b in zip(before, critic_net.parameters()))


@pytest.mark.parametrize("sources, critic, error", [
    ("[{name: adversarial, width: 2}]", "{enabled: true, probability: 0.5}", "cannot be used with a trainable source"),
    ("[{name: patch}]", "{probability: 0.5}", "also set objective.critic.enabled: true"),
], ids=["trainable-source", "critic-off"])
def test_the_critics_own_batch_refuses_what_it_cannot_serve(tiny_data, tmp_path, capsys, sources, critic, error):
    objective = f"objective={{name: learn_not_to_predict, sources: {sources}, critic: {critic}}}"
    assert main(["train", "synthetic_ffp", "--data", str(tiny_data), "--out", str(tmp_path / "run"), *TINY_SET,
                 "--set", objective]) == 2
    assert error in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_hinge_never_penalises_predicting_the_real_frame():
    """Where a pseudo-anomaly's continuation is nearer the real target than the margin, a prediction of
    the real target costs nothing; a prediction of the continuation itself is pushed away."""
    objective = {"name": "learn_not_to_predict", "probability": 1.0, "hinge_weight": 1.0, "margin": 10.0,
                 "sources": [{"name": "repeat"}]}
    pipeline = tiny_pipeline("ffp", objective=objective, loss={"adversarial": 0.05})
    batch = pipeline.objective.make_batch(numbered_clips(), np.array([0, 10, 25, 40]), step=0)
    assert bool((batch["source"] >= 0).all())
    target = batch["clips"][:, -1]
    assert pipeline.objective.terms(batch, target.clone())["pseudo_hinge"].item() == 0
    assert pipeline.objective.terms(batch, batch["abnormal"].clone())["pseudo_hinge"].item() > 0


def test_a_hinge_without_a_margin_is_refused(tiny_data, tmp_path, capsys):
    objective = "objective={name: learn_not_to_predict, sources: [{name: patch}], hinge_weight: 0.1}"
    assert main(["train", "synthetic_ffp", "--data", str(tiny_data), "--out", str(tmp_path / "run"), *TINY_SET,
                 "--set", objective]) == 2
    assert "which is 0: the hinge would do nothing; set a margin" in capsys.readouterr().err


def test_every_source_has_its_own_gallery_columns_even_twice_the_same_kind():
    pipeline = model({"name": "cuboid"}, {"name": "cuboid", "mode": "reverse"}, {"name": "patch"})
    clips = numbered_clips()
    images = pipeline.sample_images(pipeline.sample_batch(clips, np.array([0, 20, 30])))
    assert {"cuboid0: input", "cuboid1: prediction", "patch: input"} <= set(images)
    assert not torch.equal(images["cuboid0: input"], images["cuboid1: input"])
