"""benchmarks/targets.json: every target is read from a measured result file, none is written down."""

import importlib.util
import json
import math
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def checker():
    spec = importlib.util.spec_from_file_location("check_targets", BENCHMARKS / "check_targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_target_reads_a_number_from_its_result_file():
    check = checker()
    targets = json.loads((BENCHMARKS / "targets.json").read_text())["targets"]
    assert targets
    for target in targets:
        assert ("at_least" in target) != ("at_most" in target), target["id"]
        assert math.isfinite(check.measured(target, BENCHMARKS)), target["id"]


def test_a_star_averages_and_minus_subtracts(tmp_path):
    check = checker()
    (tmp_path / "r.json").write_text(json.dumps({"a": {"s0": {"auc": 0.8}, "s1": {"auc": 0.9}}, "b": {"s0": {"auc": 0.5}}}))
    target = {"file": "r.json", "path": ["a", "*", "auc"], "minus": ["b", "*", "auc"], "at_least": 0.3}
    assert math.isclose(check.measured(target, tmp_path), 0.35)
    assert check.met(target, 0.35) and not check.met(target, 0.29)
