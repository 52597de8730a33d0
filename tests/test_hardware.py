"""`train.precision: auto` picks bf16 only where the hardware has it; `train.compile` trains and scores the same."""

import torch

from pseudovad.training import hardware

from helpers import moving_clips, tiny_pipeline


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


def test_the_cpu_has_a_name_and_a_bf16_answer():
    native, evidence = hardware.bf16_support(torch.device("cpu"))
    assert isinstance(native, bool) and hardware.cpu_model() in evidence
