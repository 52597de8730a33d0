"""End to end through the command line: synthetic data -> train -> resume -> evaluate."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
import torch

from pseudovad import __version__
from pseudovad.checkpoint import load_checkpoint, save_checkpoint
from pseudovad.cli import main

TINY = [
    "--set", "data.height=32", "--set", "data.width=32",
    "--set", "generator.width=4", "--set", "generator.levels=3",
    "--set", "discriminator.width=4", "--set", "flow.iterations=5",
    "--set", "train.checkpoint_every=2", "--set", "train.sample_every=2",
    "--set", "loss.flow=2",  # all four of FFP's losses: synthetic_ffp itself drops the flow term
]


def train(tiny_data, out, *extra):
    return main(["train", "synthetic_ffp", "--data", str(tiny_data), "--out", str(out), *TINY, *extra])


def test_inspect_real_ped2_json(shared_data, capsys):
    assert main(["inspect", str(shared_data / "ped2"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layout"] == "frames"
    assert (summary["train"]["videos"], summary["train"]["frames"]) == (16, 2550)
    assert (summary["test"]["videos"], summary["test"]["frames"], summary["test"]["anomalous"]) == (12, 2010, 1648)


def test_train_then_evaluate_writes_results(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(tiny_data, run, "--iterations", "3", "--evaluate") == 0
    results = json.loads((run / "results.json").read_text())
    assert set(results["auc"]["psnr"]) >= {"micro", "micro_raw", "macro"}
    assert results["label_version"].startswith("frame_labels_synthetic.npy")
    assert results["frames_scored"] == sum(len(v["labels"]) for v in results["videos"])
    assert set(results["auc_per_kind"]["psnr"]) == {"running", "vehicle", "thrown_object", "wrong_way"}
    assert (run / "tensorboard").is_dir()
    assert "micro AUC" in capsys.readouterr().out


def test_resumed_run_matches_uninterrupted_run(tiny_data, tmp_path):
    assert train(tiny_data, tmp_path / "straight", "--iterations", "4") == 0
    assert train(tiny_data, tmp_path / "resumed", "--iterations", "2") == 0
    assert train(tiny_data, tmp_path / "resumed", "--iterations", "4", "--resume") == 0
    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "latest.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "latest.pt")
    assert resumed["iteration"] == 4
    for network in ("generator", "discriminator"):
        for name, value in straight["networks"][network].items():
            torch.testing.assert_close(resumed["networks"][network][name], value, rtol=0, atol=0, msg=f"{network}.{name}")


def test_existing_run_is_not_overwritten(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(tiny_data, run, "--iterations", "2") == 0
    before = (run / "checkpoints" / "latest.pt").read_bytes()
    assert train(tiny_data, run, "--iterations", "2") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "checkpoints" / "latest.pt").read_bytes() == before


def test_resume_accepts_the_same_data_at_a_new_path(tiny_data, tmp_path):
    assert train(tiny_data, tmp_path / "run", "--iterations", "2") == 0
    moved = tmp_path / "moved"
    shutil.copytree(tiny_data, moved)
    assert train(moved, tmp_path / "run", "--iterations", "4", "--resume") == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["iteration"] == 4


def test_a_resumed_run_keeps_its_precision_and_names_each_machine(tiny_data, tmp_path, monkeypatch):
    """`precision: auto` resolves per machine: a run begun in fp32 and resumed where auto would pick
    bf16 goes on in fp32 (one experiment, not two), and the run says where each stretch trained."""
    import pseudovad.training.base as base
    import pseudovad.training.loop as loop
    run = tmp_path / "run"
    monkeypatch.setattr(base, "resolve_precision", lambda requested, device: ("fp32", "auto: machine A lacks bf16"))
    monkeypatch.setattr(loop, "device_name", lambda device: "machine A")
    assert train(tiny_data, run, "--iterations", "2") == 0
    monkeypatch.setattr(base, "resolve_precision", lambda requested, device: ("bf16", "auto: machine B has AMX"))
    monkeypatch.setattr(loop, "device_name", lambda device: "machine B")
    assert train(tiny_data, run, "--iterations", "4", "--resume") == 0
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["precision"] == "fp32" == load_checkpoint(run / "checkpoints" / "latest.pt")["precision"]
    assert summary["precision_reason"].startswith("kept from the checkpoint, which trained in fp32; this machine alone would pick bf16")
    assert summary["trained_on"] == [{"from_iteration": 0, "machine": "machine A", "precision": "fp32"},
                                     {"from_iteration": 2, "machine": "machine B", "precision": "fp32"}]


def test_training_history_of_a_checkpoint_that_predates_it():
    from pseudovad.training.loop import training_history
    assert training_history({"iteration": 148}, 148, "AMD EPYC", "fp32") == [
        {"from_iteration": 0, "machine": "not recorded", "precision": "not recorded"},
        {"from_iteration": 148, "machine": "AMD EPYC", "precision": "fp32"}]
    same = [{"from_iteration": 0, "machine": "AMD EPYC", "precision": "fp32"}]
    assert training_history({"trained_on": same}, 500, "AMD EPYC", "fp32") == same


def test_resume_refuses_a_changed_experiment(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(tiny_data, run, "--iterations", "2") == 0
    assert train(tiny_data, run, "--iterations", "4", "--resume", "--set", "loss.flow=0") == 2
    assert "loss.flow: 2.0 -> 0.0" in capsys.readouterr().err


def test_synth_and_planned_commands(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "s"), "--preset", "tiny"]) == 0
    assert "running" in capsys.readouterr().out
    assert main(["synth", str(tmp_path / "s"), "--preset", "tiny"]) == 2
    assert main(["report", "x"]) == 2


def test_experiment_grid_runs_and_tabulates(tiny_data, tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    overrides = {key: yaml.safe_load(value) for key, value in (pair.split("=") for pair in TINY[1::2])}
    overrides["train.iterations"] = 2
    grid.write_text(json.dumps({"base": "synthetic_ffp", "seeds": [0], "overrides": overrides,
                                "variants": {"ffp": {}, "no_flow": {"loss.flow": 0}}}))
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(tmp_path / "exp")]) == 0
    report = json.loads((tmp_path / "exp" / "experiment.json").read_text())
    assert {run["variant"] for run in report["runs"]} == {"ffp", "no_flow"}
    assert all(run["trained_on"][0]["from_iteration"] == 0 for run in report["runs"])  # the machine beside each number
    assert not list((tmp_path / "exp").rglob("calibration.json"))  # runs compared by AUC skip the calibration
    assert "| no_flow | psnr |" in (tmp_path / "exp" / "experiment.md").read_text()


def test_two_branch_results_have_every_score(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "synthetic_two_branch", "--data", str(tiny_data), "--out", str(run), *TINY,
                 "--set", "classifier.width=4", "--iterations", "2", "--evaluate"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert set(results["auc"]) == {"psnr", "classifier", "classifier_abnormal", "combined"}
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert set(state["networks"]) == {"classifier", "pseudo_generator", "pseudo_discriminator",
                                      "normal_generator", "normal_discriminator"}


def write_grid(path, variants: dict, seeds=(0,), text: str | None = None):
    overrides = {key: yaml.safe_load(value) for key, value in (pair.split("=") for pair in TINY[1::2])}
    overrides["train.iterations"] = 2
    path.write_text(text or json.dumps({"base": "synthetic_ffp", "seeds": list(seeds), "overrides": overrides, "variants": variants}))
    return path


def test_runs_still_to_train_get_every_job_when_others_are_already_done():
    """Two runs to train and two already done, --jobs 2: both trainings run at once. (Through one
    ThreadPoolExecutor, a done run finishing at once left the pool a single thread for the trainings.)"""
    import threading
    from pseudovad.experiment import in_parallel
    both_training = threading.Barrier(2, timeout=10)  # broken unless two trainings wait on it together

    def run(task: str) -> str:
        if task.startswith("train"):
            both_training.wait()
        return task.upper()

    tasks = ["done0", "train0", "done1", "train1"]
    assert in_parallel(run, tasks, 2, quick=lambda task: task.startswith("done")) == ["DONE0", "TRAIN0", "DONE1", "TRAIN1"]


def test_once_a_run_is_stopped_no_further_run_starts():
    """SIGTERM to a grid's training stops that run (exit 130): the grid must not go on to start the next."""
    from pseudovad.errors import Interrupted
    from pseudovad.experiment import in_parallel
    started = []

    def run(task: str) -> str:
        started.append(task)
        if task == "stopped":
            raise Interrupted("stopped")
        return task

    with pytest.raises(Interrupted):
        in_parallel(run, ["a", "stopped", "b", "c"], 1, quick=lambda task: False)
    assert started == ["a", "stopped"]


def test_experiment_says_a_stopped_run_continues_rather_than_failed(tiny_data, tmp_path, capsys, monkeypatch):
    """A run that exits 130 was stopped (Ctrl-C, SIGTERM) after saving its checkpoint: the grid exits
    130 too and says that rerunning continues it, not that it failed."""
    import pseudovad.experiment as experiment
    monkeypatch.setattr(experiment.Trainings, "call", lambda *args, **kwargs: 130)
    grid = write_grid(tmp_path / "a.yaml", {"v": {}})
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(tmp_path / "exp")]) == 130
    err = capsys.readouterr().err
    assert "run v seed 0 stopped with its checkpoint saved; the same command continues it" in err and "failed" not in err


def test_experiment_restarts_a_run_killed_before_its_first_checkpoint(tiny_data, tmp_path):
    """A grid stopped before a run's first checkpoint leaves a config and no checkpoint: rerunning the
    grid starts that run over instead of failing with "already holds a run"."""
    out = tmp_path / "exp"
    grid = write_grid(tmp_path / "a.yaml", {"v": {}})
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out)]) == 0
    run = out / "v" / "seed0"
    shutil.rmtree(run / "checkpoints")
    (run / "results.json").unlink()
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out)]) == 0
    assert (run / "results.json").exists() and (run / "checkpoints" / "latest.pt").exists()


def test_experiment_splits_the_threads_between_its_jobs(monkeypatch):
    from pseudovad.experiment import job_threads
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert [job_threads(jobs) for jobs in (1, 2, 3)] == [2, 1, 1]
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert [job_threads(jobs) for jobs in (1, 2, 3)] == [8, 4, 2]


def test_experiment_refuses_a_run_whose_variant_was_redefined(tiny_data, tmp_path, capsys):
    """The same name with a new definition must not show the old run's numbers under the new definition."""
    out = tmp_path / "exp"
    assert main(["experiment", str(write_grid(tmp_path / "a.yaml", {"v": {}})), "--data", str(tiny_data), "--out", str(out)]) == 0
    results = (out / "v" / "seed0" / "results.json").read_bytes()
    capsys.readouterr()
    grid = write_grid(tmp_path / "b.yaml", {"v": {"loss.flow": 0}})
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "variant 'v' seed 0: " in err and "was trained with another definition (differs in loss.flow)" in err
    assert (out / "v" / "seed0" / "results.json").read_bytes() == results


def test_experiment_status_says_where_each_run_stands_and_touches_nothing(tiny_data, tmp_path, capsys):
    """--status, asked of a grid part-way through (one seed trained, one run trained but not evaluated),
    names each run's state; it writes nothing in OUT, draws no synthetic scene, and shows a redefined
    variant as stale rather than as done."""
    out = tmp_path / "exp"
    grid = write_grid(tmp_path / "a.yaml", {"v": {}, "w": {"loss.flow": 0}}, seeds=(0, 1))
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out), "--seeds", "0"]) == 0
    (out / "w" / "seed0" / "results.json").unlink()
    before = {path: path.stat().st_mtime_ns for path in out.rglob("*")}
    capsys.readouterr()
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out), "--status"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert lines[0][:4] == ["v/seed0", "done", "micro", "AUC"] and 0 <= float(lines[0][4]) <= 1
    (stretch,) = load_checkpoint(out / "w" / "seed0" / "checkpoints" / "latest.pt")["trained_on"]  # where and how it ran
    assert " ".join(lines[1]) == f"w/seed0 under way checkpoint at step 2 of 2, trained from step 0 on {stretch['machine']} ({stretch['precision']})"
    assert lines[2:4] == [["v/seed1", "not", "started"], ["w/seed1", "not", "started"]]
    assert lines[4] == ["4", "runs:", "1", "done,", "1", "under", "way,", "2", "not", "started"]
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == before

    redefined = write_grid(tmp_path / "b.yaml", {"v": {"loss.flow": 0}, "w": {"loss.flow": 0}}, seeds=(0, 1))
    assert main(["experiment", str(redefined), "--data", str(tiny_data), "--out", str(out), "--status"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.split()[:2] == ["v/seed0", "stale"] and "differs in loss.flow" in first

    assert main(["experiment", str(grid), "--validation", "synthetic:10", "--out", str(tmp_path / "val"), "--status"]) == 0
    assert "scene10/v/seed0" in capsys.readouterr().out and not (tmp_path / "val").exists()


def test_a_run_trained_by_another_code_revision_is_neither_reused_nor_resumed(tiny_data, tmp_path, capsys, monkeypatch):
    """Same config, but a class it trains with has been fixed since (its `revision` raised): the grid
    refuses to show the old run's numbers, and --resume refuses to continue it."""
    from pseudovad.registry import OBJECTIVES
    out = tmp_path / "exp"
    grid = write_grid(tmp_path / "a.yaml", {"v": {}})
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out)]) == 0
    run = out / "v" / "seed0"
    assert json.loads((run / "train_summary.json").read_text())["revisions"] == {"pipeline ffp": 1, "objective ffp": 1}
    results = (run / "results.json").read_bytes()
    monkeypatch.setattr(OBJECTIVES.get("ffp"), "revision", 2)
    capsys.readouterr()
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out)]) == 2
    assert "was trained by other revisions of the code (objective ffp 1 -> 2;" in capsys.readouterr().err
    assert (run / "results.json").read_bytes() == results
    assert main(["train", "--out", str(run), "--resume", "--iterations", "3"]) == 2
    assert "trained so far by other revisions of its code (objective ffp 1 -> 2;" in capsys.readouterr().err
    (run / "train_summary.json").write_text('{"revisions": ')  # damaged: what trained the run is unknown
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out)]) == 2
    assert f"variant 'v' seed 0: {run / 'train_summary.json'} is damaged" in capsys.readouterr().err
    assert (run / "results.json").read_bytes() == results


def test_revisions_name_the_pipeline_its_objective_and_each_source():
    from pseudovad.config import load_config
    from pseudovad.training.pipelines import behaviour_revisions, stale_revisions
    config = load_config("ped2_pseudo", [("objective.sources", [{"name": "adversarial"}, {"name": "patch"}])])
    assert behaviour_revisions(config) == {"pipeline ffp": 1, "objective learn_not_to_predict": 3,
                                           "pseudo-anomaly source adversarial": 4, "pseudo-anomaly source patch": 1}
    assert stale_revisions(None, behaviour_revisions(config)) == ("objective learn_not_to_predict 1 -> 3, "
                                                                  "pseudo-anomaly source adversarial 1 -> 4")  # from before the fixes
    assert stale_revisions(behaviour_revisions(config), behaviour_revisions(config)) is None


def test_experiment_reuses_a_run_saved_before_an_option_existed(tiny_data, tmp_path):
    """A config.yaml written before eval.compile existed is the same definition (the option's default
    keeps the earlier behaviour), and so is one that saved eval.batch_size 16 (before `auto`: speed only);
    a key that no longer exists is still a difference."""
    out = tmp_path / "exp"
    grid = write_grid(tmp_path / "a.yaml", {"v": {}})
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out)]) == 0
    saved = out / "v" / "seed0" / "config.yaml"
    values = yaml.safe_load(saved.read_text())
    del values["eval"]["compile"]
    values["eval"]["batch_size"] = 16
    saved.write_text(yaml.safe_dump(values))
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out)]) == 0
    values["eval"]["retired_option"] = 1
    saved.write_text(yaml.safe_dump(values))
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out)]) == 2


@pytest.mark.parametrize(
    "variants, seeds, text, message",
    [
        ({"../../x": {}}, (0,), None, "variant name '../../x' must be a plain folder name"),
        ({".hidden": {}}, (0,), None, "variant name '.hidden' must be a plain folder name"),
        ({"a": {}}, (0, 0), None, "'seeds' lists a seed twice ([0, 0])"),
        ({"a": {}}, (-1,), None, "'seeds' must be a list of non-negative integers"),
        ({}, (0,), "base: synthetic_ffp\nvariants:\n  a: {}\n  a: {loss.flow: 0}\n", "the key 'a' is given twice"),
        ({}, (0,), "base: synthetic_ffp\nincumbent: shiped\nvariants:\n  shipped: {}\n",
         "'incumbent' must name one of the variants ['shipped'], got 'shiped'"),
    ],
)
def test_experiment_grid_errors(tmp_path, capsys, variants, seeds, text, message):
    grid = write_grid(tmp_path / "grid.yaml", variants, seeds, text)
    assert main(["experiment", str(grid), "--data", str(tmp_path), "--out", str(tmp_path / "exp")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path.parent / "x").exists() and not (tmp_path / "exp").exists()  # where ../../x would land


def test_version_and_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    assert version.value.code == 0 and capsys.readouterr().out == f"pseudovad {__version__}\n"
    with pytest.raises(SystemExit) as usage:
        main(["score"])
    assert usage.value.code == 2 and "the following arguments are required" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(tiny_data):
    """`pseudovad inspect --json | head -1`: the reader is gone before the output; no traceback, 141."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run([sys.executable, "-m", "pseudovad", "inspect", str(tiny_data), "--json"], stdout=writer,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    finally:
        os.close(writer)
    assert done.returncode == 141 and done.stderr == ""


def test_resume_with_only_the_run_folder_and_its_refusals(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(tiny_data, run, "--iterations", "2") == 0
    assert main(["train", "--out", str(run), "--resume", "--iterations", "3", *TINY]) == 0  # --set may repeat the run's values
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["iteration"] == 3
    capsys.readouterr()
    assert main(["train", "--out", str(run)]) == 2
    assert capsys.readouterr().err == ("pseudovad train: error: no config given: name one (`pseudovad configs` lists them), "
                                       "or pass --resume to continue the run in --out\n")
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert f"--resume: no checkpoint at {tmp_path / 'none' / 'checkpoints' / 'latest.pt'}; start without --resume" in capsys.readouterr().err
    path = run / "checkpoints" / "latest.pt"
    state = load_checkpoint(path)
    state["config"]["flow"].update(estimator="spynet", weights=str(tmp_path / "spynet.pth"))
    save_checkpoint(state, path)
    assert main(["train", "--out", str(run), "--resume", "--iterations", "4"]) == 2
    assert "the run's config names files that training opens (weights)" in capsys.readouterr().err


def test_evaluate_names_a_dataset_that_moved(tiny_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    assert train(data, tmp_path / "run", "--iterations", "2") == 0
    data.rename(tmp_path / "moved")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (f"pseudovad evaluate: error: {tmp_path / 'run'}: the dataset it was trained on, {data}, "
                                       "is not there any more; pass --data ROOT where it is now\n")
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(tmp_path / "moved")]) == 0


def test_pseudovad_set_applies_to_every_config_read(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PSEUDOVAD_SET", "train.iterations=2 data.height=32 data.width=32 generator.width=4 generator.levels=3 "
                                        "discriminator.width=4 flow.iterations=5")
    assert main(["train", "synthetic_ffp", "--data", str(tiny_data), "--out", str(tmp_path / "run")]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["train"]["iterations"], saved["data"]["height"], saved["generator"]["width"]) == (2, 32, 4)
    monkeypatch.setenv("PSEUDOVAD_SET", "train.iteratons=2")
    capsys.readouterr()
    assert main(["train", "synthetic_ffp", "--data", str(tiny_data), "--out", str(tmp_path / "run2")]) == 2
    assert capsys.readouterr().err == ("pseudovad train: error: --set: unknown config key 'train.iteratons'; did you mean "
                                       "'train.iterations'? (the overrides include $PSEUDOVAD_SET)\n")


def test_experiment_runs_a_subset_of_the_grid_seeds(tiny_data, tmp_path, capsys):
    """`--seeds 1` trains every variant of seed 1 and nothing of seed 0; a seed the grid lacks is refused."""
    out = tmp_path / "exp"
    grid = write_grid(tmp_path / "a.yaml", {"v": {}, "w": {"loss.flow": 0}}, seeds=(0, 1))
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out), "--seeds", "1"]) == 0
    report = json.loads((out / "experiment.json").read_text())
    assert report["seeds"] == [1] and sorted((run["variant"], run["seed"]) for run in report["runs"]) == [("v", 1), ("w", 1)]
    assert not (out / "v" / "seed0").exists()
    for variant in ("v", "w"):  # trained with seed 1, not only filed under it
        assert yaml.safe_load((out / variant / "seed1" / "config.yaml").read_text())["train"]["seed"] == 1
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out), "--seeds", "2"]) == 2
    assert "not a subset of the grid's seeds [0, 1]" in capsys.readouterr().err
    assert main(["experiment", str(grid), "--data", str(tiny_data), "--out", str(out), "--seeds", "one"]) == 2


def test_experiment_table_pairs_the_variants_by_dataset_and_seed():
    """Each (dataset, seed) is a row; a variant is judged by its fused score where it has one, and a pair
    one side lacks is shown as missing and left out of the count."""
    from pseudovad.experiment import paired_table

    def run(variant: str, data: str, seed: int, psnr: float, combined: float | None = None) -> dict:
        auc = {"psnr": {"micro": psnr}} | ({"combined": {"micro": combined}} if combined is not None else {})
        return {"variant": variant, "data": f"/x/{data}", "seed": seed, "auc": auc}

    runs = [run("ffp", "a", 0, 0.90), run("ntp", "a", 0, 0.80, combined=0.95),
            run("ffp", "a", 1, 0.92), run("ntp", "a", 1, 0.99, combined=0.91), run("ffp", "b", 0, 0.70)]
    lines = paired_table(runs)
    assert "| a | 0 | 0.9000 | 0.9500 | +5.00 |" in lines
    assert "| a | 1 | 0.9200 | 0.9100 | -1.00 |" in lines
    assert "| b | 0 | 0.7000 | - | - |" in lines
    assert lines[-1] == "\nntp is above ffp on 1 of 2 pairs."
    assert paired_table([run("ffp", "a", 0, 0.9)]) == []
    assert not any("†" in line for line in lines)  # nothing recorded, nothing claimed

    def on(entry: dict, *stretches: tuple[str, str]) -> dict:
        return entry | {"trained_on": [{"from_iteration": 100 * i, "machine": m, "precision": p}
                                       for i, (m, p) in enumerate(stretches)]}

    zen3 = ("AMD EPYC", "fp32")
    runs = [on(run("ffp", "a", 0, 0.90), zen3), on(run("ntp", "a", 0, 0.80, 0.95), zen3),
            on(run("ffp", "a", 1, 0.92), zen3), on(run("ntp", "a", 1, 0.99, 0.91), ("not recorded", "not recorded"), zen3, ("Xeon", "bf16"))]
    lines = paired_table(runs)
    assert "| a | 0 | 0.9000 | 0.9500 | +5.00 |" in lines and "| a | 1 † | 0.9200 | 0.9100 | -1.00 |" in lines
    assert any(line.startswith("\n† its variants trained on different machines or precisions") for line in lines)


def test_with_an_incumbent_a_challenger_is_selected_only_if_higher_on_every_pair():
    """The rule the validation grids write before their runs, applied by the table: a better mean that
    one pair contradicts keeps the incumbent; of the challengers higher everywhere, the best mean wins;
    a pair the challenger lacks counts against it. Without an incumbent, the best mean (as before)."""
    from pseudovad.experiment import markdown_table, select, summarise

    def run(variant: str, seed: int, micro: float) -> dict:
        return {"variant": variant, "data": "/x/scene10", "seed": seed, "label_version": "v", "train_seconds": 1.0,
                "auc": {"psnr": {"micro": micro}}}

    runs = [run("shipped", 0, 0.90), run("shipped", 1, 0.90),
            run("lucky", 0, 0.99), run("lucky", 1, 0.89),        # best mean, lower on one pair
            run("steady", 0, 0.91), run("steady", 1, 0.91),      # higher on both pairs
            run("steadier", 0, 0.92), run("steadier", 1, 0.92),  # higher on both, better mean
            run("partial", 0, 0.99)]                              # never asked on seed 1
    table = summarise(runs)
    assert select(table, runs, "d")["variant"] == "partial"  # the mean alone rewards a variant asked once
    chosen = select(table, runs, "d", incumbent="shipped")
    assert chosen["variant"] == "steadier" and chosen["rule"] == "a challenger replaces shipped only if higher on every (dataset, seed) pair"
    without_winners = [r for r in runs if r["variant"] in ("shipped", "lucky", "partial")]
    assert select(summarise(without_winners), without_winners, "d", incumbent="shipped")["variant"] == "shipped"
    text = markdown_table(table, runs, "d", chosen, incumbent="shipped")
    assert "**Selected: steadier**" in text and "; the rule: a challenger replaces shipped only if higher" in text
    assert "difference from shipped in points" in text and "lucky is above shipped on 1 of 2 pairs." in text


def test_experiment_table_marks_training_time_that_misses_a_stretch_before_a_resume():
    """A resumed training records only its last process's seconds, so a variant's mean time is marked
    and footnoted rather than shown as if whole; a table of unresumed runs (or older records) says nothing."""
    from pseudovad.experiment import markdown_table

    def run(variant: str, seed: int, seconds: float, **extra) -> dict:
        return {"variant": variant, "seed": seed, "data": "/x/a", "label_version": "v", "train_seconds": seconds,
                "auc": {"psnr": {"micro": 0.9}}} | extra

    table = {"ffp": {"psnr": {"micro": {"mean": 0.9, "std": 0.0}}}, "ntp": {"psnr": {"micro": {"mean": 0.9, "std": 0.0}}}}
    text = markdown_table(table, [run("ffp", 0, 100.0, resumed_from=0), run("ffp", 1, 300.0), run("ntp", 0, 50.0, resumed_from=974)], "d")
    assert "| ffp | psnr | 0.9000 ± 0.0000 | - | - | 200 |" in text
    assert "| ntp | psnr | 0.9000 ± 0.0000 | - | - | 50* |" in text
    assert "\\* a run of this variant was resumed" in text
    text = markdown_table(table, [run("ffp", 0, 100.0, resumed_from=0), run("ntp", 0, 50.0)], "d")
    assert "*" not in text
