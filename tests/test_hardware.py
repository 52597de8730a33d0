"""`train.precision: auto` picks bf16 only where the hardware has it; `eval.compile` scores as the plain
network does, falls back to it when compiling fails, and compiles under `auto` only jobs long enough."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import pseudovad
from pseudovad.training import trained
from pseudovad.cli import main
from pseudovad.errors import ConfigError, PseudovadError
from pseudovad.training import base, hardware
from pseudovad.training.ffp import FFPPipeline

from helpers import TINY_SET, moving_clips, tiny_pipeline


def test_auto_picks_fp32_where_bf16_is_unavailable(monkeypatch):
    monkeypatch.setattr(hardware, "bf16_support", lambda device: (False, "a CPU without AMX or AVX512-BF16"))
    pipeline = tiny_pipeline("ffp", train={"precision": "auto"})
    assert pipeline.precision == "fp32" and "without AMX" in pipeline.precision_reason
    assert not pipeline.autocast()._enabled


def test_auto_picks_bf16_where_the_hardware_has_it(monkeypatch):
    monkeypatch.setattr(hardware, "bf16_support", lambda device: (True, "a CPU with AMX"))
    pipeline = tiny_pipeline("ffp", train={"precision": "auto"})
    assert pipeline.precision == "bf16" and pipeline.autocast()._enabled


def test_a_precision_set_in_the_config_is_kept(monkeypatch):
    monkeypatch.setattr(hardware, "bf16_support", lambda device: (True, "a CPU with AMX"))
    assert tiny_pipeline("ffp", train={"precision": "fp32"}).precision == "fp32"
    monkeypatch.setattr(hardware, "bf16_support", lambda device: (False, "none"))
    assert tiny_pipeline("ffp", train={"precision": "bf16"}).precision == "bf16"


@pytest.mark.parametrize("size, device, frames", [(128, "cpu", 4), (64, "cpu", 16), (256, "cpu", 1), (16, "cpu", 16),
                                                  (128, "cuda", 32)])
def test_auto_scoring_batch_keeps_a_cpu_batch_in_cache(size, device, frames):
    assert hardware.scoring_batch_size("auto", size, size, torch.device(device)) == frames
    assert hardware.scoring_batch_size(7, size, size, torch.device(device)) == 7


def test_the_scoring_batch_reaches_every_scorer_and_changes_no_score():
    pipeline = tiny_pipeline("ffp", training=False, eval={"batch_size": "auto"})
    assert pipeline.eval_batch_size == hardware.MOST_FRAMES_PER_BATCH  # 32x32 frames: the cap
    clips = moving_clips(batch=6)
    one_by_one = torch.cat([pipeline.score(clips[i : i + 1])["psnr"] for i in range(len(clips))])
    torch.testing.assert_close(pipeline.score(clips)["psnr"], one_by_one)


def test_evaluate_calibrate_and_the_detector_score_in_batches_of_eval_batch_size(tiny_data, tmp_path, monkeypatch):
    """The batch each scoring job hands the network is eval.batch_size's (the scorers' own loops, not the network)."""
    seen = []
    score = FFPPipeline.score
    monkeypatch.setattr(FFPPipeline, "score", lambda self, clips: seen.append(len(clips)) or score(self, clips))
    run = tmp_path / "run"
    assert main(["train", "synthetic_ffp", "--data", str(tiny_data), "--out", str(run), *TINY_SET, "--iterations", "2",
                 "--set", "eval.batch_size=3", "--no-calibrate"]) == 0
    for job in (lambda: main(["calibrate", str(run)]), lambda: main(["evaluate", str(run)]),
                lambda: pseudovad.load(run).score(np.zeros((12, 32, 32, 3), np.uint8))):
        seen.clear()
        job()
        assert seen and max(seen) == 3, seen


@pytest.mark.parametrize("value, message", [("fast", "must match auto"), (0, "must be at least 1")])
def test_a_wrong_scoring_batch_is_named(value, message):
    with pytest.raises(ConfigError, match=f"'eval.batch_size'.*{message}"):
        tiny_pipeline("ffp", eval={"batch_size": value})


def test_the_cpu_has_a_name_and_a_bf16_answer():
    native, evidence = hardware.bf16_support(torch.device("cpu"))
    assert isinstance(native, bool) and hardware.cpu_model() in evidence
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():  # the kernel's flags, an account independent of PyTorch's
        flags = set(re.findall(r"\b(amx_bf16|avx512_bf16)\b", cpuinfo.read_text()))
        assert native == bool(flags), (evidence, flags)


def scoring_pipeline(**sections: dict):
    return tiny_pipeline("ffp", training=False, train={"precision": "fp32"}, **sections)


def test_compiled_scoring_gives_the_plain_networks_scores():
    """5 clips with eval batch 2: two full batches and a padded one, all through one compiled graph."""
    pipeline = scoring_pipeline(eval={"batch_size": 2})
    clips = moving_clips(5) + 0.1 * torch.randn(5, 5, 1, 32, 32)
    plain = pipeline.score(clips)["psnr"]
    assert pipeline.compile_scoring()
    compiled = pipeline.score(clips)["psnr"]
    assert pipeline.scoring_generator.compiled is not None, "compiling fell back to the plain network"
    torch.testing.assert_close(compiled, plain, rtol=0, atol=1e-3)


def test_a_failed_compilation_scores_uncompiled_with_a_warning(monkeypatch):
    def broken(*args, **kwargs):
        def call(images):
            raise RuntimeError("no C++ compiler found")
        return call
    monkeypatch.setattr(base.torch, "compile", broken)
    pipeline = scoring_pipeline()
    clips = moving_clips(3)
    plain = pipeline.score(clips)["psnr"]
    with pytest.warns(RuntimeWarning, match="no C.. compiler found"):
        pipeline.compile_scoring()  # it compiles at once, on a blank clip
    assert pipeline.scoring_generator.compiled is None
    torch.testing.assert_close(pipeline.score(clips)["psnr"], plain)


def test_auto_compiles_only_jobs_that_earn_the_warm_up_back(monkeypatch):
    compiled = []
    for setting, frames, expected in [("auto", trained.COMPILE_PAYS_FROM - 1, False), ("auto", trained.COMPILE_PAYS_FROM, True),
                                      ("auto", math.inf, True), ("on", 10, True), ("off", math.inf, False)]:
        pipeline = scoring_pipeline(eval={"compile": setting})
        monkeypatch.setattr(pipeline, "compile_scoring", lambda: compiled.append(1) or True)
        assert trained.compile_if_it_pays(pipeline, frames) is expected, (setting, frames)
    assert len(compiled) == 3


def test_compiling_asked_of_a_pipeline_that_cannot_says_so(capsys):
    """--compile on for a pipeline without a compiled scoring path scores uncompiled, and says so."""
    pipeline = tiny_pipeline("autoencoder", training=False, train={"precision": "fp32"}, eval={"compile": "on"})
    assert trained.compile_if_it_pays(pipeline, 10) is False
    assert capsys.readouterr().err == "note: the autoencoder pipeline has no compiled scoring; it scores uncompiled\n"
    assert trained.compile_if_it_pays(pipeline, math.inf, "auto") is False and capsys.readouterr().err == ""


def test_a_training_pipeline_refuses_to_compile_its_scoring():
    with pytest.raises(PseudovadError, match="training=False"):
        tiny_pipeline("ffp").compile_scoring()
