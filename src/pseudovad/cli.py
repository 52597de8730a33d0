"""The `pseudovad` command line: synth, inspect, configs, train, calibrate, evaluate, report, score, live,
export, demo, experiment.

Every user-fixable problem is a PseudovadError, printed as one clear line: exit status 2 for usage and
input errors, 1 for runtime failures (errors.py). Ctrl-C ends a command with 130 after it has saved
what it can, a closed pipe (`pseudovad inspect --json | head`) with 141 as Unix tools do; neither
prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

from pseudovad import __version__
from pseudovad.alerts import DEFAULT_FALSE_ALARM_RATE
from pseudovad.errors import ConfigError, Interrupted, PseudovadError
from pseudovad.interrupts import stopped_by_ctrl_c_or_sigterm

EXAMPLES = """examples:
  pseudovad demo                                   synthetic data -> train FFP -> AUC table
  pseudovad synth data/synthetic --preset default  write the built-in synthetic scene
  pseudovad inspect ../shared/data/ped2 --json     what a dataset folder holds
  pseudovad configs                                the packaged configs: named, scales and methods
  pseudovad train ped2_ffp --data ../shared/data/ped2 --out runs/ped2_ffp
  pseudovad train scale/ped2_128 method/pseudo --data ../shared/data/ped2 --out runs/p128   a scale x method
  torchrun --nproc_per_node 2 -m pseudovad train ped2_ffp_paper --data ../shared/data/ped2 --out runs/paper
                                                   2 processes (GPUs, else CPU/gloo), global batch split between them
  pseudovad evaluate runs/ped2_ffp                 frame-level AUCs into runs/ped2_ffp/results.json
  pseudovad report runs/ped2_ffp                   HTML report: runs/ped2_ffp/report/index.html
  pseudovad train camera_ffp --data my_camera/ --out runs/camera   your own camera's normal videos
  pseudovad train --out runs/camera --resume       continue a run: its folder is all it needs
  pseudovad score my_video.mp4 --run runs/camera --out scored/      per-frame scores and alerts
  pseudovad live rtsp://camera.local/stream --run runs/camera       JSON-lines alerts as events open and close
  pseudovad export runs/camera                     a self-contained scorer (torch.export) in runs/camera/export/
"""


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    from pseudovad.config.schema import LAYOUTS

    parser.add_argument("--layout", choices=LAYOUTS, help="force a dataset layout instead of detecting it")
    parser.add_argument("--labels", type=Path, help="label file to use when the dataset folder holds several (or none)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pseudovad",
        description="Video anomaly detection trained on normal video only: Future Frame Prediction, taught not to "
        "predict pseudo-anomalies made from the normal video, with the thesis's GAN pipelines and OGNet beside it; "
        "evaluated by the field's frame-level protocol.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pseudovad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data_commands(sub)
    _add_training_commands(sub)
    _add_deployment_commands(sub)
    return parser


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    """synth, inspect, configs: what there is to train on."""
    synth = sub.add_parser("synth", help="write the built-in synthetic surveillance dataset (FFP frame layout)")
    synth.add_argument("out", type=Path, help="output folder (empty or absent, unless --force)")
    synth.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    synth.add_argument("--preset", default="default", help="tiny (seconds, for tests) or default (what the demo uses; the default)")
    synth.add_argument("--force", action="store_true", help="replace a synthetic dataset pseudovad wrote in the output folder "
                       "(refused for any other folder, such as a real dataset's, or one holding other files)")

    inspect = sub.add_parser("inspect", help="describe a dataset folder: layout, videos, frames, labels")
    inspect.add_argument("root", type=Path, help="dataset folder")
    _add_data_options(inspect)
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")

    sub.add_parser("configs", help="list the packaged configs (named ones, scales, methods) with what each is")


def _add_training_commands(sub: argparse._SubParsersAction) -> None:
    """train, calibrate, evaluate, demo, experiment: making and measuring a run."""
    train = sub.add_parser("train", help="train a pipeline from a YAML config, then calibrate its alert threshold")
    train.add_argument("config", nargs="*", help="YAML config path or packaged config name (see `pseudovad configs`); "
                       "several are merged in order, e.g. scale/ped2_128 method/ffp; none with --resume (the run's own)")
    train.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, TensorBoard logs, calibration, results")
    train.add_argument("--data", type=Path, help="dataset folder (overrides data.root)")
    train.add_argument("--iterations", type=int, help="training steps (overrides train.iterations)")
    train.add_argument("--seed", type=int, help="random seed (overrides train.seed)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config value, e.g. --set loss.flow=0")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint; only --iterations "
                       "(a larger budget) and --data (the same data moved) may differ from the saved run")
    train.add_argument("--force", action="store_true", help="delete an existing run in --out and start over")
    _add_rate_option(train, "the alert threshold calibrated when training ends: the fraction of normal frames flagged")
    train.add_argument("--no-calibrate", action="store_true", help="skip the calibration when training ends (experiments, "
                       "which compare AUCs, use this; `pseudovad calibrate RUN` does it later)")
    train.add_argument("--evaluate", action="store_true", help="evaluate on the test split when training ends")

    calibrate = sub.add_parser("calibrate", help="measure a run's scores on normal clips (those data.holdout keeps out "
                               "of training; the training clips themselves where it is 0): its threshold and statistics, "
                               "into RUN/calibration.json (training does this when it ends)")
    calibrate.add_argument("run", type=Path, help="run folder written by `pseudovad train`")
    _add_rate_option(calibrate, "the fraction of normal frames the threshold flags")
    calibrate.add_argument("--data", type=Path, help="the training data, where it is now (default: where it was)")

    evaluate = sub.add_parser("evaluate", help="score the test split of a trained run and compute AUCs")
    evaluate.add_argument("run", type=Path, help="run folder written by `pseudovad train`")
    evaluate.add_argument("--data", type=Path, help="dataset folder (default: the one the run was trained on)")
    evaluate.add_argument("--labels", type=Path, help="label file to use (default: the run's data.labels, else the one "
                          "found in the dataset)")
    _add_compile_option(evaluate)

    demo = sub.add_parser("demo", help="synthetic dataset -> train FFP -> evaluate -> AUC table")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for the dataset and the run (default runs/demo)")
    demo.add_argument("--iterations", type=int, help="override the demo config's training steps")
    demo.add_argument("--force", action="store_true", help="draw the scene again where drawing it into --out/synthetic was cut "
                      "short (a scene the demo drew before is reused, one drawn otherwise refused, a folder holding anything "
                      "else never touched; the run is always trained afresh)")

    experiment = sub.add_parser("experiment", help="train and evaluate a grid of config variants over seeds; Markdown + JSON table")
    experiment.add_argument("grid", type=Path, help="grid YAML or the name of a packaged grid (pipelines, ffp_ablation, ...): "
                            "scale, base config, seeds, variants")
    experiment.add_argument("--data", help="dataset folder, or synthetic:0,1,2,3,4 (built-in scenes): a table to report, "
                            "never used to choose (give --data or --validation)")
    experiment.add_argument("--validation", metavar="SPLIT", help="choose on validation data instead: synthetic:10,11,12 "
                            "(the built-in scene with seeds kept for choosing) or heldout:ROOT (ROOT's last 3 training "
                            "videos held out, with injected anomalies); the best variant is recorded with the split")
    experiment.add_argument("--out", type=Path, required=True, help="folder for the runs and the table; rerun to continue")
    experiment.add_argument("--jobs", type=int, default=1, help="runs in parallel (the CPU threads are split between them)")
    experiment.add_argument("--scale", metavar="NAME", help="a packaged scale to run the grid at, by its name (ped2_128 for configs/scale/ped2_128.yaml), replacing the grid's own")
    experiment.add_argument("--seeds", help="run only these of the grid's seeds, e.g. 0 or 1,2: every "
                            "variant of a seed then trains on one machine in one sitting, side by side with --jobs (long grids split over sessions)")
    experiment.add_argument("--status", action="store_true", help="say where each run of the grid stands (done with its "
                            "AUC, the step its checkpoint reached, not started, or stale) and exit; trains and writes nothing, "
                            "so it can be asked while the grid runs")


def _add_deployment_commands(sub: argparse._SubParsersAction) -> None:
    """report, score, live, export: using a trained run."""
    report = sub.add_parser("report", help="HTML report of an evaluated run: AUCs vs published, ROC, per-video plots, galleries")
    report.add_argument("run", type=Path, help="run folder holding results.json (from `pseudovad evaluate`)")

    score = sub.add_parser("score", help="score your own video(s) with a trained run: per-frame scores, alerts, plot")
    score.add_argument("source", help="a video file, a folder of frame images, or a folder of several of either")
    score.add_argument("--run", type=Path, required=True, help="run folder written by `pseudovad train`")
    score.add_argument("--out", type=Path, required=True, help="output folder (one subfolder per video for a folder of several)")
    _add_scoring_options(score)

    live = sub.add_parser("live", help="watch a camera, a stream or a file (at its own frame rate): JSON-lines alerts on "
                          "stdout as events open and close, until the footage ends or Ctrl-C")
    live.add_argument("source", help="a camera index (0, 1, ...), a stream URL (rtsp://, http://, ...), a video file or "
                      "a folder of one video's frames")
    live.add_argument("--run", type=Path, required=True, help="run folder written by `pseudovad train`")
    live.add_argument("--out", type=Path, help="also write scores.csv, segments.json (and with --video annotated.mp4) here")
    _add_scoring_options(live)

    export = sub.add_parser("export", help="write a run's scorer (predictor, normalisation, threshold) as one self-contained file")
    export.add_argument("run", type=Path, help="run folder written by `pseudovad train`")
    export.add_argument("--format", default="pt2", choices=["pt2", "onnx", "torchscript"],
                        help="pt2 (default: torch.export, load with torch.export.load(path).module(); needs only torch), "
                        "onnx (any ONNX runtime; writing it needs `pip install 'pseudovad[onnx]'`) or torchscript "
                        "(for LibTorch C++ only: PyTorch deprecates it)")
    _add_rate_option(export, "the false-alarm rate whose threshold is built in (default: the rate it was calibrated at)", default=None)


def _add_rate_option(parser: argparse.ArgumentParser, meaning: str, default: float | None = DEFAULT_FALSE_ALARM_RATE) -> None:
    parser.add_argument("--false-alarm-rate", type=float, default=default, metavar="RATE",
                        help=f"{meaning}" + (f" (default {default:g})" if default is not None else ""))


def _add_compile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compile", choices=["auto", "on", "off"], help="compile the scoring network (torch.compile; "
                        "the ffp pipeline only, with any objective): faster once warm, after seconds of compiling. "
                        "Default: the run's "
                        "eval.compile (auto unless set); auto does it for jobs of 10000 frames or more "
                        "(trained.COMPILE_PAYS_FROM) and always in `live`")


def _add_scoring_options(parser: argparse.ArgumentParser) -> None:
    from pseudovad.alerts import DEFAULT_FPS, AlertRules

    rules = AlertRules()
    _add_rate_option(parser, "flag this fraction of normal frames, read off the run's calibration (default: the rate "
                     "it was calibrated at)", default=None)
    parser.add_argument("--threshold", type=float, help="a threshold on the score the run alerts by, in its units (PSNR: "
                        "dB; a run with a critic alerts by its calibrated fused score, about 0 to 1): frames scoring below "
                        "it are flagged; replaces the calibration's and --false-alarm-rate")
    parser.add_argument("--smoothing", type=float, default=rules.smoothing_s, metavar="SECONDS",
                        help=f"average each frame's anomaly over the last this many seconds (default {rules.smoothing_s:g})")
    parser.add_argument("--min-duration", type=float, default=rules.min_duration_s, metavar="SECONDS",
                        help=f"report an event once it lasts this long (default {rules.min_duration_s:g})")
    parser.add_argument("--merge-gap", type=float, default=rules.merge_gap_s, metavar="SECONDS",
                        help=f"events closer than this are one (default {rules.merge_gap_s:g})")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frame rate of frame folders, and of video files, "
                        f"cameras and streams that do not tell (default {DEFAULT_FPS:g})")
    parser.add_argument("--video", action="store_true", help="also write annotated.mp4 (H.264): prediction-error heat map and flagged frames")
    _add_compile_option(parser)


def _cmd_synth(args: argparse.Namespace) -> None:
    from pseudovad.data.synthetic import generate_synthetic

    description = generate_synthetic(args.out, seed=args.seed, preset=args.preset, overwrite=args.force)
    kinds = sorted({event["kind"] for event in description["events"]})
    print(f"wrote {args.out}: {len(description['train_videos'])} training and {len(description['test_videos'])} test videos, "
          f"{len(description['events'])} anomalous events ({', '.join(kinds)})")


def _cmd_inspect(args: argparse.Namespace) -> None:
    from pseudovad.data.layouts import load_dataset

    summary = load_dataset(args.root, args.layout, args.labels).summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    test = summary["test"]
    print(f"{summary['root']}  (layout: {summary['layout']})")
    print(f"  train: {summary['train']['videos']} videos, {summary['train']['frames']} frames")
    print(f"  test:  {test['videos']} videos, {test['frames']} frames, "
          f"{test['anomalous'] if test['anomalous'] is not None else 'no'} anomalous")
    print(f"  labels: {test['label_version'] or 'none'}")


def _load_train_config(args: argparse.Namespace):
    """The config to train: the one named, or with --resume and none named the run's own."""
    from pseudovad.config import build_config, environment_overrides, load_config, parse_override, without_training_files
    from pseudovad.runs import saved_config

    overrides = [parse_override(text) for text in args.set]
    if args.data is not None:
        overrides.append(("data.root", str(args.data)))
    if args.iterations is not None:
        overrides.append(("train.iterations", args.iterations))
    if args.seed is not None:
        overrides.append(("train.seed", args.seed))
    if args.config:
        return load_config(args.config if len(args.config) > 1 else args.config[0], overrides)
    if not args.resume:
        raise ConfigError("no config given: name one (`pseudovad configs` lists them), or pass --resume to continue the run in --out")
    values, source = saved_config(args.out)
    config = build_config(values, [*overrides, *environment_overrides()], source=source)
    if without_training_files(config) != config:
        raise ConfigError(f"{args.out}: the run's config names files that training opens (weights); a run folder never "
                          "chooses the files opened: resume with your own config, which names them")
    return config


def _cmd_train(args: argparse.Namespace) -> None:
    from pseudovad.calibration import check_rate
    from pseudovad.reporting.gallery import save_gallery
    from pseudovad.training.distributed import is_main_process
    from pseudovad.training.loop import train

    check_rate(args.false_alarm_rate)
    config = _load_train_config(args)
    checkpoint = train(config, args.out, resume=args.resume, force=args.force, sample_writer=save_gallery)
    if not is_main_process():
        return
    print(f"trained {config.pipeline} for {config.train.iterations} iterations: {checkpoint}")
    if not args.no_calibrate:
        _calibrate(args.out, args.false_alarm_rate, None, "train")
    if args.evaluate:
        _print_results(_evaluate(args.out, None, None))


def _calibrate(run: Path, rate: float, data: Path | None, command: str = "calibrate") -> None:
    from pseudovad.calibration import calibrate_run, unmeasurable
    from pseudovad.runs import RunDir

    calibration = calibrate_run(run, rate, data)
    problem = unmeasurable(rate, calibration["clips"])
    print(f"calibrated on {calibration['clips']} normal clips ({calibration['clips_from']}): {calibration['label']} below "
          f"{calibration['threshold']:.2f} flags {'one' if problem else f'{100 * rate:g}%'} of them; {RunDir(run).calibration}")
    if problem:
        print(f"pseudovad {command}: warning: {problem}", file=sys.stderr)


def _cmd_calibrate(args: argparse.Namespace) -> None:
    _calibrate(args.run, args.false_alarm_rate, args.data)


def _evaluate(run: Path, data: Path | None, labels: Path | None, compile_setting: str | None = None) -> dict:
    from pseudovad.evaluation.evaluate import evaluate_run

    return evaluate_run(run, data, labels, compile_setting)


def _print_results(results: dict) -> None:
    from pseudovad.runs import RunDir

    print(f"\n{results['dataset']} | labels: {results['label_version']} | {results['frames_scored']} frames scored "
          f"| iteration {results['iteration']} (fixed budget)")
    print(f"{'score':<20}{'micro AUC':>11}{'micro raw':>11}{'macro AUC':>11}")
    for name, auc in results["auc"].items():
        cells = "".join(f"{auc[key]:>11.4f}" if auc[key] is not None else f"{'-':>11}" for key in ("micro", "micro_raw", "macro"))
        print(f"{name:<20}{cells}")
    for name, points in results["operating_points"].items():
        if points["eer"] is not None:
            print(f"{name}: true-positive rate {100 * points['tpr_at_fpr_1']:.1f}% at 1% false positives, "
                  f"{100 * points['tpr_at_fpr_5']:.1f}% at 5%; equal error rate {100 * points['eer']:.1f}% (raw scores)")
    for name, kinds in results.get("auc_per_kind", {}).items():
        if kinds:
            print(f"{name} micro AUC per anomaly kind: " + ", ".join(f"{k} {v:.4f}" for k, v in kinds.items()))
    print(f"results: {RunDir(Path(results['run'])).results}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    _print_results(_evaluate(args.run, args.data, args.labels, args.compile))


def _cmd_demo(args: argparse.Namespace) -> None:
    from pseudovad.config import load_config
    from pseudovad.data.synthetic import synthetic_scene
    from pseudovad.reporting.gallery import save_gallery
    from pseudovad.reporting.report import build_report
    from pseudovad.training.loop import train

    started = time.perf_counter()
    data = synthetic_scene(args.out / "synthetic", 0, overwrite=args.force)
    overrides = [("data.root", str(data))]
    if args.iterations is not None:
        overrides.append(("train.iterations", args.iterations))
    config = load_config("synthetic_ffp", overrides)
    run = args.out / "ffp"
    train(config, run, force=True, sample_writer=save_gallery)
    _calibrate(run, DEFAULT_FALSE_ALARM_RATE, None)
    results = _evaluate(run, None, None)
    _print_results(results)
    page = build_report(run)
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    print(f"report: {page}")


def _cmd_experiment(args: argparse.Namespace) -> None:
    from pseudovad.experiment import grid_status, parse_seeds, run_grid

    seeds = None if args.seeds is None else parse_seeds(args.seeds, "--seeds", "--seeds 0,1")
    if args.status:
        _print_status(grid_status(args.grid, args.data, args.out, args.scale, args.validation, seeds), args.out)
        return
    with stopped_by_ctrl_c_or_sigterm():  # stops its trainings too, however the grid was started
        report = run_grid(args.grid, args.data, args.out, args.jobs, args.scale, args.validation, seeds)
    print((args.out / "experiment.md").read_text())
    print(f"{len(report['runs'])} runs; table: {args.out / 'experiment.md'}, data: {args.out / 'experiment.json'}")


def _print_status(runs: list[dict], out: Path) -> None:
    for run in runs:
        print(f"{str(Path(run['run']).relative_to(out)):<40} {run['state']:<12} {_status_detail(run)}".rstrip())
    counts = {state: sum(run["state"] == state for run in runs) for state in ("done", "under way", "not started", "stale")}
    print(f"{len(runs)} runs: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n))


def _status_detail(run: dict) -> str:
    if run["state"] == "done":
        return f"micro AUC {run['micro']:.4f} ({run['score']})"
    if run["state"] == "under way":
        stretches = "; ".join(f"from step {s['from_iteration']} on {s['machine']} ({s['precision']})" for s in run["trained_on"])
        return f"checkpoint at step {run['step']} of {run['iterations']}" + (f", trained {stretches}" if stretches else "")
    return run.get("why", "")


def _cmd_configs(args: argparse.Namespace) -> None:
    from pseudovad.config import describe_configs

    rows = describe_configs()
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    print("\nA name SCALE_METHOD (e.g. ped2_128_two_branch) is scale/SCALE merged with method/METHOD.")


def _cmd_report(args: argparse.Namespace) -> None:
    from pseudovad.reporting.report import build_report

    print(f"report: {build_report(args.run)}")


def _check_finite(**values: float | None) -> None:
    """Numbers from the command line that must be finite (`--fps inf` would hang the video writer)."""
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise PseudovadError(f"--{name.replace('_', '-')} must be a finite number, got {value}")


def _rules(args: argparse.Namespace):
    from pseudovad.alerts import AlertRules

    return AlertRules(args.smoothing, args.min_duration, args.merge_gap)


def _cmd_score(args: argparse.Namespace) -> None:
    from pseudovad.scoring import score_source

    _check_finite(fps=args.fps, threshold=args.threshold, false_alarm_rate=args.false_alarm_rate)
    with stopped_by_ctrl_c_or_sigterm():  # a scheduler's or `timeout`'s stop also finishes every file
        summaries = score_source(args.source, args.run, args.out, args.false_alarm_rate, args.threshold, args.fps,
                                 args.video, _rules(args), args.compile)
    threshold = summaries[0]["threshold"]
    print(f"threshold: {threshold['score']} below {threshold['value']:.2f} ({threshold['from']})")
    if "warning" in threshold:
        print(f"pseudovad score: warning: {threshold['warning']}", file=sys.stderr)
    for summary in summaries:
        print(f"{summary['source']}: {summary['frames']} frames, {summary['flagged_frames']} flagged, "
              f"{len(summary['segments'])} alert(s)")
        for warning in summary["warnings"]:
            print(f"pseudovad score: warning: {summary['source']}: {warning}", file=sys.stderr)
    print(f"results: {args.out}")


def _cmd_live(args: argparse.Namespace) -> None:
    from pseudovad.scoring import watch_live

    def emit(event: dict) -> None:
        print(json.dumps(event), flush=True)

    _check_finite(fps=args.fps, threshold=args.threshold, false_alarm_rate=args.false_alarm_rate)
    with stopped_by_ctrl_c_or_sigterm():
        watch_live(args.source, args.run, args.out, emit, args.false_alarm_rate, args.threshold, args.fps, args.video,
                   _rules(args), args.compile)


def _cmd_export(args: argparse.Namespace) -> None:
    from pseudovad.export import export_run

    print(f"exported: {export_run(args.run, args.format, args.false_alarm_rate)}")


COMMANDS = {
    "configs": _cmd_configs,
    "synth": _cmd_synth,
    "inspect": _cmd_inspect,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "demo": _cmd_demo,
    "experiment": _cmd_experiment,
    "report": _cmd_report,
    "score": _cmd_score,
    "live": _cmd_live,
    "calibrate": _cmd_calibrate,
    "export": _cmd_export,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
        sys.stdout.flush()
    except PseudovadError as error:
        kind = "interrupted" if isinstance(error, Interrupted) else "error"
        print(f"pseudovad {args.command}: {kind}: {error}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        print(f"pseudovad {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): say nothing more to it, as Unix tools stopped by SIGPIPE do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return 0
