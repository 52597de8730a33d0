"""The `pseudovad` command line: synth, inspect, train, evaluate, demo (report and score come later).

Every user-fixable problem is a PseudovadError: printed as one clear line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pseudovad.errors import PseudovadError

EXAMPLES = """examples:
  pseudovad demo                                   synthetic data -> train FFP -> AUC table
  pseudovad synth data/synthetic --preset default  write the built-in synthetic scene
  pseudovad inspect ../shared/data/ped2 --json     what a dataset folder holds
  pseudovad train configs/ped2_ffp.yaml --data ../shared/data/ped2 --out runs/ped2_ffp
  pseudovad evaluate runs/ped2_ffp                 frame-level AUCs into runs/ped2_ffp/results.json
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

    train = sub.add_parser("train", help="train a pipeline from a YAML config")
    train.add_argument("config", help="YAML config path, or the name of a packaged config (e.g. synthetic_ffp)")
    train.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, TensorBoard logs, results")
    train.add_argument("--data", type=Path, help="dataset folder (overrides data.root)")
    train.add_argument("--iterations", type=int, help="training steps (overrides train.iterations)")
    train.add_argument("--seed", type=int, help="random seed (overrides train.seed)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config value, e.g. --set loss.flow=0")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
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
    experiment.add_argument("grid", type=Path, help="grid YAML: base config, seeds, variants (see configs/grids/)")
    experiment.add_argument("--data", type=Path, required=True, help="dataset folder")
    experiment.add_argument("--out", type=Path, required=True, help="folder for the runs and the table; rerun to continue")
    experiment.add_argument("--jobs", type=int, default=1, help="runs in parallel (the CPU threads are split between them)")

    for name, issue in (("report", "HTML report"), ("score", "scoring a user's own video")):
        planned = sub.add_parser(name, help=f"{issue} (planned; not implemented yet)")
        planned.add_argument("args", nargs="*")
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
    return load_config(args.config, overrides)


def _cmd_train(args: argparse.Namespace) -> None:
    from pseudovad.training.loop import train

    config = _load_train_config(args)
    checkpoint = train(config, args.out, resume=args.resume, force=args.force)
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
    train(config, run, force=True)
    results = _evaluate(run, None, None)
    _print_results(results)
    print(f"demo finished in {time.perf_counter() - started:.0f} s")


def _cmd_experiment(args: argparse.Namespace) -> None:
    from pseudovad.experiment import run_grid

    report = run_grid(args.grid, args.data, args.out, args.jobs)
    print((args.out / "experiment.md").read_text())
    print(f"{len(report['runs'])} runs; table: {args.out / 'experiment.md'}, data: {args.out / 'experiment.json'}")


def _cmd_planned(args: argparse.Namespace) -> None:
    raise PseudovadError(f"`pseudovad {args.command}` is planned but not implemented in this version")


COMMANDS = {
    "synth": _cmd_synth,
    "inspect": _cmd_inspect,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "demo": _cmd_demo,
    "experiment": _cmd_experiment,
    "report": _cmd_planned,
    "score": _cmd_planned,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except PseudovadError as error:
        print(f"pseudovad {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0
