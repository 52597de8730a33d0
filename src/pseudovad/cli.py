"""The `pseudovad` command line: synth, inspect, train, evaluate, report, score, demo, experiment.

Every user-fixable problem is a PseudovadError: printed as one clear line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from pseudovad.errors import PseudovadError

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
  pseudovad score my_video.mp4 --run runs/ped2_ffp --out scored/   per-frame scores and anomalous segments
"""


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", choices=["frames", "ucsd", "avenue", "footage"], help="force a dataset layout instead of detecting it")
    parser.add_argument("--labels", type=Path, help="label file to use when the dataset folder holds several (or none)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pseudovad",
        description="Video anomaly detection trained on normal video only: Future Frame Prediction and "
        "GAN pseudo-anomalies, evaluated by the field's frame-level protocol.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = sub.add_parser("synth", help="write the built-in synthetic surveillance dataset (FFP frame layout)")
    synth.add_argument("out", type=Path, help="output folder (must be empty or absent)")
    synth.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    synth.add_argument("--preset", default="default", help="tiny (seconds, for tests) or default (what the demo uses)")
    synth.add_argument("--force", action="store_true", help="overwrite a non-empty output folder")

    inspect = sub.add_parser("inspect", help="describe a dataset folder: layout, videos, frames, labels")
    inspect.add_argument("root", type=Path, help="dataset folder")
    _add_data_options(inspect)
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")

    sub.add_parser("configs", help="list the packaged configs (named ones, scales, methods) with what each is")

    train = sub.add_parser("train", help="train a pipeline from a YAML config")
    train.add_argument("config", nargs="+", help="YAML config path or packaged config name (see `pseudovad configs`); "
                       "several are merged in order, e.g. scale/ped2_128 method/ffp")
    train.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, TensorBoard logs, results")
    train.add_argument("--data", type=Path, help="dataset folder (overrides data.root)")
    train.add_argument("--iterations", type=int, help="training steps (overrides train.iterations)")
    train.add_argument("--seed", type=int, help="random seed (overrides train.seed)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config value, e.g. --set loss.flow=0")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint; only --iterations (a larger budget) and --data (the same data moved) may differ from the saved run")
    train.add_argument("--force", action="store_true", help="delete an existing run in --out and start over")
    train.add_argument("--evaluate", action="store_true", help="evaluate on the test split when training ends")

    evaluate = sub.add_parser("evaluate", help="score the test split of a trained run and compute AUCs")
    evaluate.add_argument("run", type=Path, help="run folder written by `pseudovad train`")
    evaluate.add_argument("--data", type=Path, help="dataset folder (default: the one the run was trained on)")
    evaluate.add_argument("--labels", type=Path, help="label file to use (default: the one found in the dataset)")

    demo = sub.add_parser("demo", help="synthetic dataset -> train FFP -> evaluate -> AUC table")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for the dataset and the run (default runs/demo)")
    demo.add_argument("--iterations", type=int, help="override the demo config's training steps")
    demo.add_argument("--force", action="store_true", help="start over if --out already holds a demo")

    experiment = sub.add_parser("experiment", help="train and evaluate a grid of config variants over seeds; Markdown + JSON table")
    experiment.add_argument("grid", type=Path, help="grid YAML or the name of a packaged grid (pipelines, ffp_ablation, ...): "
                            "scale, base config, seeds, variants")
    experiment.add_argument("--data", help="dataset folder, or synthetic:0,1,2,3,4 (built-in scenes): a table to report, "
                            "never used to choose")
    experiment.add_argument("--validation", metavar="SPLIT", help="choose on validation data instead: synthetic:10,11,12 "
                            "(the built-in scene with seeds kept for choosing) or heldout:ROOT (ROOT's last 3 training "
                            "videos held out, with injected anomalies); the best variant is recorded with the split")
    experiment.add_argument("--out", type=Path, required=True, help="folder for the runs and the table; rerun to continue")
    experiment.add_argument("--jobs", type=int, default=1, help="runs in parallel (the CPU threads are split between them)")
    experiment.add_argument("--scale", help="a packaged scale (scale/NAME) to run the grid at, replacing the grid's own")

    report = sub.add_parser("report", help="HTML report of an evaluated run: AUCs vs published, ROC, per-video plots, galleries")
    report.add_argument("run", type=Path, help="run folder holding results.json (from `pseudovad evaluate`)")

    score = sub.add_parser("score", help="score your own video(s) with a trained run: per-frame scores and anomalous segments")
    score.add_argument("source", type=Path, help="a video file, a folder of frame images, or a folder of several of either")
    score.add_argument("--run", type=Path, required=True, help="run folder written by `pseudovad train`")
    score.add_argument("--out", type=Path, required=True, help="output folder (one subfolder per video for a folder of several)")
    score.add_argument("--percentile", type=float, default=1.0,
                       help="flag frames whose PSNR is below this percentile of the training clips' PSNRs (default 1)")
    score.add_argument("--threshold-clips", type=int, default=500, help="training clips scored for the threshold (default 500)")
    score.add_argument("--threshold", type=float, metavar="DB", help="PSNR threshold in dB instead of one from the training data")
    score.add_argument("--fps", type=float, default=25.0, help="frame rate of frame folders, for the time column (default 25)")
    score.add_argument("--video", action="store_true", help="also write annotated.mp4: prediction-error heat map and flagged frames")
    return parser


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
    from pseudovad.config import load_config, parse_override

    overrides = [parse_override(text) for text in args.set]
    if args.data is not None:
        overrides.append(("data.root", str(args.data)))
    if args.iterations is not None:
        overrides.append(("train.iterations", args.iterations))
    if args.seed is not None:
        overrides.append(("train.seed", args.seed))
    return load_config(args.config if len(args.config) > 1 else args.config[0], overrides)


def _cmd_train(args: argparse.Namespace) -> None:
    from pseudovad.training.distributed import is_main_process
    from pseudovad.training.loop import train

    from pseudovad.reporting.gallery import save_gallery

    config = _load_train_config(args)
    checkpoint = train(config, args.out, resume=args.resume, force=args.force, sample_writer=save_gallery)
    if not is_main_process():
        return
    print(f"trained {config.pipeline} for {config.train.iterations} iterations: {checkpoint}")
    if args.evaluate:
        _print_results(_evaluate(args.out, None, None))


def _evaluate(run: Path, data: Path | None, labels: Path | None) -> dict:
    from pseudovad.evaluation.evaluate import evaluate_run

    return evaluate_run(run, data, labels)


def _print_results(results: dict) -> None:
    print(f"\n{results['dataset']} | labels: {results['label_version']} | {results['frames_scored']} frames scored "
          f"| iteration {results['iteration']} (fixed budget)")
    print(f"{'score':<20}{'micro AUC':>11}{'micro raw':>11}{'macro AUC':>11}")
    for name, auc in results["auc"].items():
        cells = "".join(f"{auc[key]:>11.4f}" if auc[key] is not None else f"{'-':>11}" for key in ("micro", "micro_raw", "macro"))
        print(f"{name:<20}{cells}")
    for name, kinds in results.get("auc_per_kind", {}).items():
        if kinds:
            print(f"{name} micro AUC per anomaly kind: " + ", ".join(f"{k} {v:.4f}" for k, v in kinds.items()))
    print(f"results: {Path(results['run']) / 'results.json'}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    _print_results(_evaluate(args.run, args.data, args.labels))


def _cmd_demo(args: argparse.Namespace) -> None:
    from pseudovad.config import load_config
    from pseudovad.data.synthetic import generate_synthetic
    from pseudovad.reporting.gallery import save_gallery
    from pseudovad.reporting.report import build_report
    from pseudovad.training.loop import train

    started = time.perf_counter()
    data = args.out / "synthetic"
    if not (data / "dataset.json").exists():
        generate_synthetic(data, seed=0, preset="default", overwrite=args.force)
    overrides = [("data.root", str(data))]
    if args.iterations is not None:
        overrides.append(("train.iterations", args.iterations))
    config = load_config("synthetic_ffp", overrides)
    run = args.out / "ffp"
    train(config, run, force=True, sample_writer=save_gallery)
    results = _evaluate(run, None, None)
    _print_results(results)
    page = build_report(run)
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    print(f"report: {page}")


def _cmd_experiment(args: argparse.Namespace) -> None:
    from pseudovad.experiment import run_grid

    report = run_grid(args.grid, args.data, args.out, args.jobs, args.scale, args.validation)
    print((args.out / "experiment.md").read_text())
    print(f"{len(report['runs'])} runs; table: {args.out / 'experiment.md'}, data: {args.out / 'experiment.json'}")


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


def _cmd_score(args: argparse.Namespace) -> None:
    from pseudovad.scoring import score_source, threshold_rule

    _check_finite(fps=args.fps, threshold=args.threshold, percentile=args.percentile)
    summaries = score_source(args.source, args.run, args.out, args.percentile, args.threshold_clips, args.threshold,
                             args.fps, args.video)
    threshold = summaries[0]["threshold"]
    print(f"threshold: PSNR below {threshold['psnr_db']:.2f} dB ({threshold_rule(threshold)})")
    for summary in summaries:
        print(f"{summary['source']}: {summary['frames']} frames, {summary['flagged_frames']} flagged in "
              f"{len(summary['segments'])} segment(s)")
    print(f"results: {args.out}")


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
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except PseudovadError as error:
        print(f"pseudovad {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0
