"""The thesis's pseudo-anomaly pipelines: every objective term reaches the generator, the classifier
sees what it should, and the fused score has the right polarity."""

import numpy as np
import pytest
import torch

from pseudovad.evaluation.protocol import frame_auc, fuse
from pseudovad.training import thesis
from pseudovad.training.thesis import ThesisPipeline

from helpers import moving_clips, tiny_pipeline


def pipeline(pipeline="two_branch", **sections) -> ThesisPipeline:
    return tiny_pipeline(pipeline, **sections)


def pseudo_generator_gradient(model: ThesisPipeline, clips: torch.Tensor) -> list[torch.Tensor]:
    """Gradient of branch A's total loss w.r.t. its generator, without stepping anything."""
    branch = model.pseudo
    prediction = branch.run_generator(clips)
    weights = {**branch.objective.term_weights(), **branch.critic_weights}
    terms = {**branch.objective.terms({"clips": clips}, prediction), **branch.critic_terms(prediction)}
    total = sum(weights[name] * value for name, value in terms.items())
    return torch.autograd.grad(total, list(branch.generator.parameters()), allow_unused=True)


def gradients_differ(first, second) -> bool:
    return any(not torch.allclose(a, b, atol=1e-9) for a, b in zip(first, second) if a is not None)


NO_EXTRA = {"generator_weight": 0.0}
BASE_LOSS = {"adversarial": 0.0}


@pytest.mark.parametrize(
    "objective_on, objective_off",
    [
        ({"name": "inverted_flow", "weight": 0.5}, {"name": "inverted_flow", "weight": 0.0}),
        ({"name": "inverted_flow", "swap_flow_inputs": True}, {"name": "inverted_flow", "swap_flow_inputs": False}),
        ({"name": "hinge_flow", "margin": 50.0}, {"name": "hinge_flow", "margin": 0.0}),
        ({"name": "kl", "weight": 10.0}, {"name": "kl", "weight": 0.0}),
    ],
)
def test_each_objective_term_changes_the_generator_gradient(objective_on, objective_off):
    clips = moving_clips()
    on = pseudo_generator_gradient(pipeline(pseudo={"objective": objective_on}, classifier=NO_EXTRA, loss=BASE_LOSS), clips)
    off = pseudo_generator_gradient(pipeline(pseudo={"objective": objective_off}, classifier=NO_EXTRA, loss=BASE_LOSS), clips)
    assert gradients_differ(on, off)


def test_inverted_flow_term_has_negative_weight_and_ffp_flow_positive():
    model = pipeline(pseudo={"objective": {"name": "inverted_flow", "weight": 0.7}})
    assert model.pseudo.objective.term_weights()["flow"] == pytest.approx(-0.7)
    assert model.normal.objective.term_weights()["flow"] == pytest.approx(2.0)


def test_classifier_term_changes_the_generator_gradient():
    clips = moving_clips()
    on = pseudo_generator_gradient(pipeline(classifier={"generator_weight": 1.0}, loss=BASE_LOSS), clips)
    off = pseudo_generator_gradient(pipeline(classifier={"generator_weight": 0.0}, loss=BASE_LOSS), clips)
    assert gradients_differ(on, off)


def test_classifier_term_does_not_accumulate_into_the_classifier():
    model = pipeline()
    clips = moving_clips()
    model.pseudo.update({"clips": clips})
    assert all(p.grad is None for p in model.classifier.parameters())


@pytest.mark.parametrize("kind, normal_frames", [("two_branch", 4), ("single_branch", 2)])
def test_classifier_sees_real_frames_and_normal_predictions(kind, normal_frames, monkeypatch):
    model = pipeline(kind)
    inputs, labels = [], []
    handle = model.classifier.register_forward_hook(lambda module, given, output: inputs.append(given[0].detach().clone()))
    loss = thesis.classifier_loss
    monkeypatch.setattr(thesis, "classifier_loss", lambda probabilities, abnormal: labels.append(abnormal) or loss(probabilities, abnormal))
    before = [p.clone() for p in model.classifier.parameters()]
    clips = moving_clips(2)
    model.train_step({"clips": clips})
    handle.remove()
    # One classifier call inside branch A's loss (2 pseudo-anomalies), then the classifier's own
    # step: 2 pseudo-anomalies labelled abnormal, and the normal frames (2 real + 2 of B's predictions
    # if two-branch) labelled normal, the real frames first.
    assert [len(batch) for batch in inputs] == [2, 2, normal_frames]
    assert labels[-2:] == [True, False]
    torch.testing.assert_close(inputs[-1][:2], clips[:, -1], rtol=0, atol=0)
    if kind == "two_branch":
        assert not torch.equal(inputs[-1][2:], clips[:, -1])  # B's predictions, not the frames again
    assert any(not torch.equal(a, b) for a, b in zip(before, model.classifier.parameters()))


def test_skip_frame_objective_feeds_branch_a_fast_motion():
    model = pipeline(pseudo={"objective": {"name": "skip_frames", "skip": 3}})
    from pseudovad.data.cache import FrameArray
    from pseudovad.data.clips import ClipDataset
    from pseudovad.data.dataset import Video
    from pathlib import Path

    frames = np.arange(30, dtype=np.uint8).reshape(30, 1, 1, 1).repeat(32, 1).repeat(32, 2)
    clips = ClipDataset(FrameArray(frames, np.array([0, 30]), [Video("v", Path("v"), 30)]), 4)
    batch = model.make_batch(clips, np.array([0, 25]), step=0)
    pixel = ((batch["pseudo_clips"][:, :, 0, 0, 0] + 1) * 127.5).round().int().tolist()
    assert pixel[0] == [0, 3, 6, 9, 10]
    assert pixel[1] == [19, 22, 25, 28, 29]  # moved back to fit the video
    assert ((batch["clips"][0, :, 0, 0, 0] + 1) * 127.5).round().int().tolist() == [0, 1, 2, 3, 4]


def test_scores_are_oriented_high_is_normal():
    model = pipeline()
    model.classify = lambda frames: torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    scores = model.score(moving_clips(2))
    assert scores["classifier"][1] > scores["classifier"][0]
    assert scores["classifier_abnormal"][1] > scores["classifier_abnormal"][0]


def test_fused_score_polarity():
    labels = np.array([0, 0, 1, 1, 0])
    psnr = np.array([30.0, 31.0, 20.0, 21.0, 29.0])  # anomalies predicted badly
    classifier = np.array([0.9, 0.8, 0.2, 0.1, 0.7])  # P(normal) low on anomalies
    fused = fuse(psnr, classifier)
    assert fused.min() == 0 and fused.max() == 1
    assert frame_auc([fused], [labels])["micro"] == pytest.approx(1.0)
    # An anomaly probability fused without flipping (the thesis's defect) hurts the AUC:
    wrong = fuse(psnr, 1 - classifier)
    assert frame_auc([wrong], [labels])["micro"] < 1.0
