"""The `cae-keras` command line (also `python -m cae_keras`): thin wrappers over the package.

Errors the user can fix end in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from cae_keras.errors import CaeKerasError

DEFAULT_DEMO_EPOCHS = 20
"""seed_cae's epochs in `make demo` (its recipe is 200). 40 took the demo, installation included, to
676 s on a 2-core AVX2 machine, past the 10 minutes it has; the demo prints the full recipe's command."""

TRAIN_FLAGS = {"recipe": ("epochs", "image_size", "batch_size", "learning_rate", "seed"),
               "dataset": ("val_fraction", "layout"), "augmentation": ("augment",),
               "scoring": ("anomaly_map", "image_score"), "runtime": ("precision", "jit_compile")}
"""The config fields `train` takes as flags (besides --data, --category and --model), by group."""
COMPARE_FLAGS = {"recipe": ("epochs", "image_size", "batch_size", "seed"), "runtime": ("precision",)}


def _int_at_least(minimum: int):
    """An argparse type: a whole number >= `minimum`, else an error that says the minimum."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """A bad flag ends in one line naming it, like every other error, not in the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from cae_keras import __version__
    from cae_keras.config import (DEFAULT_MODEL, JIT_CHOICES, MIN_IMAGE_SIZE, AugmentationConfig, DataConfig,
                                  RecipeConfig, RuntimeConfig, ScoringConfig, add_arguments)
    from cae_keras.distribution import STRATEGIES
    from cae_keras.export import FORMATS
    from cae_keras.models import REGISTRY
    from cae_keras.synth import MIN_IMAGE_SIZE as SYNTH_MIN_IMAGE_SIZE
    from cae_keras.synth import SynthConfig

    kinds = {"positive": _positive_int, "image_size": _int_at_least(MIN_IMAGE_SIZE), "fraction": _fraction}

    parser = _Parser(prog="cae-keras", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cae_keras {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show TensorFlow's own start-up and log lines")
    # -v is also taken after the command (`cae-keras evaluate -v ...`); SUPPRESS keeps the value
    # given before it when it is not repeated there.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="also show TensorFlow's own start-up and log lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = commands.add_parser("synth", parents=[verbose], help="write the built-in synthetic dataset in the MVTec AD layout")
    synth.add_argument("--out", required=True, type=Path, help="dataset root to write into")
    synth.add_argument("--category", default="bottle", help="category folder to write (default: bottle)")
    synth_defaults = SynthConfig()
    synth.add_argument("--seed", type=int, default=synth_defaults.seed,
                       help=f"the same seed writes the same images (default: {synth_defaults.seed})")
    synth.add_argument("--image-size", type=_int_at_least(SYNTH_MIN_IMAGE_SIZE),
                       default=synth_defaults.image_size,
                       help=f"square size of the images, px (default: {synth_defaults.image_size})")
    synth.add_argument("--n-train", type=_positive_int, default=synth_defaults.n_train,
                       help=f"training normals (default: {synth_defaults.n_train}, as MVTec AD bottle)")
    synth.add_argument("--n-test-good", type=_positive_int, default=synth_defaults.n_test_good,
                       help=f"good test images (default: {synth_defaults.n_test_good})")
    synth.add_argument("--n-per-defect", type=_positive_int, default=synth_defaults.n_per_defect,
                       help=f"test images of each defect type (default: {synth_defaults.n_per_defect})")

    commands.add_parser("models", parents=[verbose], help="list the registered model names")

    train = commands.add_parser("train", parents=[verbose], help="train a model into a run folder (rerun to resume)")
    train.add_argument("--data", required=True, type=Path, help="dataset root (MVTec AD layout)")
    train.add_argument("--category", help="category folder under --data (or use --all-categories)")
    train.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(REGISTRY), help=f"default: {DEFAULT_MODEL}")
    train.add_argument("--run", required=True, type=Path, help="run folder")
    # Every config flag, its default and its check come from `cae_keras.config`.
    add_arguments(train, RecipeConfig, TRAIN_FLAGS["recipe"], kinds)
    add_arguments(train, DataConfig, TRAIN_FLAGS["dataset"], kinds)
    add_arguments(train, AugmentationConfig, TRAIN_FLAGS["augmentation"], kinds)
    add_arguments(train, ScoringConfig, TRAIN_FLAGS["scoring"], kinds)
    add_arguments(train, RuntimeConfig, TRAIN_FLAGS["runtime"], kinds)
    train.add_argument("--strategy", default="none", choices=STRATEGIES,
                       help="tf.distribute: mirrored over this machine's GPUs (or CPU devices), or multi-worker "
                            "(default: none)")
    train.add_argument("--cpu-devices", type=_positive_int,
                       help="split the CPU into N logical devices (for mirrored; default: one device)")
    train.add_argument("--all-categories", action="store_true",
                       help="train every category under --data, each into RUN/<category> (--category is then ignored)")

    evaluate = commands.add_parser("evaluate", parents=[verbose], help="write metrics.json, report.md and figures for a run")
    evaluate.add_argument("--run", required=True, type=Path)
    evaluate.add_argument("--data", type=Path, help="another dataset root (default: the one trained on)")
    evaluate.add_argument("--category", help="another category (default: the one trained on)")
    add_arguments(evaluate, ScoringConfig, TRAIN_FLAGS["scoring"], kinds, keep_run=True)
    evaluate.add_argument("--allow-empty-masks", action="store_true",
                          help="keep defective test images whose mask has no defect pixel instead of stopping: "
                               "defective for image figures, their pixels normal for pixel figures (listed in "
                               "metrics.json)")
    evaluate.add_argument("--compare-scoring", action="store_true",
                          help="also score with every anomaly map and image score (reconstruction models); "
                               "writes scoring_methods.md")
    evaluate.add_argument("--min-defect-area", type=_positive_int,
                          help="also compare decision rules (thresholds, post-processing) for defects of at least "
                               "this many pixels at the model's size; writes RUN/decision_rules.md")

    predict = commands.add_parser("predict", parents=[verbose], help="score images: score, decision, map and overlay each")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a run folder")
    source.add_argument("--model", type=Path, help="a model written by `cae-keras export`")
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="images or folders of images")
    predict.add_argument("--out", required=True, type=Path)
    predict.add_argument("--save-maps", action="store_true", help="also write each map as <stem>_map.npy")
    predict.add_argument("--recursive", action="store_true",
                         help="also score the images in every sub-folder; outputs keep the sub-folders")
    predict.add_argument("--batch-size", type=_positive_int, default=32, help="images read and scored at a time")

    export = commands.add_parser("export", parents=[verbose], help="export a run: uint8 images in, map, score and decision out")
    export.add_argument("--run", required=True, type=Path)
    export.add_argument("--format", required=True, choices=FORMATS)
    export.add_argument("--out", required=True, type=Path)

    download = commands.add_parser("download", parents=[verbose], help="fetch MVTec AD (resumable, sha256-checked, safe extraction)")
    download.add_argument("--root", required=True, type=Path, help="folder to download and extract into")
    download.add_argument("--category", action="append", help="keep only this category (repeatable)")
    download.add_argument("--url", help="another mirror of the same archive")
    download.add_argument("--sha256", help="the expected sha256 when --url points at another archive")

    bench = commands.add_parser("bench", parents=[verbose], help="measure training and inference speed and memory of a model")
    bench.add_argument("--model", default="seed_cae", choices=sorted(REGISTRY))
    add_arguments(bench, RecipeConfig, ("image_size",), kinds)
    bench.add_argument("--images", type=_positive_int, default=128, help="synthetic images per epoch")
    add_arguments(bench, RuntimeConfig, ("precision",), kinds)
    bench.add_argument("--jit", dest="jit_compile", default="off", choices=JIT_CHOICES,
                       help="XLA compilation of the training step (default off here: timings without compilation)")
    bench.add_argument("--run", type=Path, help="also export this run in every format and time each")
    bench.add_argument("--out", type=Path, help="write the figures as JSON here")

    compare = commands.add_parser("compare", parents=[verbose], help="train and evaluate several models; a table and a figure")
    compare.add_argument("--data", required=True, type=Path, help="dataset root (MVTec AD layout)")
    compare.add_argument("--category", required=True, help="category folder under --data")
    compare.add_argument("--models", required=True, help="comma-separated model names")
    compare.add_argument("--out", required=True, type=Path, help="folder for the runs, the table and the figure")
    add_arguments(compare, RecipeConfig, COMPARE_FLAGS["recipe"], kinds)
    add_arguments(compare, RuntimeConfig, COMPARE_FLAGS["runtime"], kinds)
    compare.add_argument("--allow-empty-masks", action="store_true", help="as for evaluate")

    demo = commands.add_parser("demo", parents=[verbose], help="synthetic data; the default model, pixel_stats and seed_cae compared")
    demo.add_argument("--data", type=Path, default=Path("data/synthetic"),
                      help="where the synthetic bottle is written, or found (default: data/synthetic)")
    demo.add_argument("--runs", type=Path, default=Path("runs/demo"),
                      help="folder of the demo's runs and comparison (default: runs/demo)")
    demo.add_argument("--epochs", type=_positive_int, default=DEFAULT_DEMO_EPOCHS,
                      help=f"seed_cae's epochs (default: {DEFAULT_DEMO_EPOCHS}; its full recipe is 200)")
    add_arguments(demo, RecipeConfig, ("image_size",), kinds)
    return parser


def _train_config(args: argparse.Namespace):
    from cae_keras.config import TrainConfig

    flags = {name: getattr(args, name) for names in TRAIN_FLAGS.values() for name in names}
    return TrainConfig(data=str(args.data), category=args.category, model=args.model, **flags)


def _synth(args) -> None:
    from cae_keras.synth import SynthConfig, write_dataset

    config = SynthConfig(image_size=args.image_size, n_train=args.n_train, n_test_good=args.n_test_good,
                         n_per_defect=args.n_per_defect, seed=args.seed)
    folder = write_dataset(args.out, args.category, config)
    print(f"wrote {folder}")


def _train(args) -> None:
    from cae_keras.data import list_categories
    from cae_keras.distribution import split_cpu
    from cae_keras.errors import ConfigError
    from cae_keras.training import train

    if args.cpu_devices:
        split_cpu(args.cpu_devices)
    if args.all_categories:
        categories = list_categories(args.data)
        if not categories:
            raise ConfigError(f"{args.data}: no category folders (with train/good) found")
        runs = {name: args.run / name for name in categories}
    elif args.category:
        runs = {args.category: args.run}
    else:
        raise ConfigError("give --category NAME or --all-categories")
    for number, (category, run) in enumerate(runs.items(), 1):
        if len(runs) > 1:
            print(f"[{number}/{len(runs)}] {category}")
        args.category = category
        train(_train_config(args), run, verbose=2, strategy=args.strategy)
        print(f"trained: {run}")


def _evaluate(args) -> dict:
    from cae_keras.evaluation import evaluate_run
    from cae_keras.reports import write_report
    from cae_keras.runs import Run

    overrides = {k: v for k, v in (("anomaly_map", args.anomaly_map), ("image_score", args.image_score)) if v}
    out = args.run
    if overrides:  # the run's own metrics.json stays as it is
        out = args.run / "scoring" / "_".join(f"{v}" for v in overrides.values()).replace("+", "-")
    run = Run(args.run)  # opened once: the model and validation normals load once for every table below
    if args.compare_scoring:  # refused before the evaluation, not after it
        from cae_keras.evaluation import check_compare_scoring

        check_compare_scoring(run)
    evaluation = evaluate_run(run, args.data, args.category, scoring_overrides=overrides or None,
                              allow_empty_masks=args.allow_empty_masks)
    paths = write_report(evaluation, out)
    if args.compare_scoring:
        from cae_keras.evaluation import SCORING_KEYS, compare_scoring
        from cae_keras.files import write_text_atomic
        from cae_keras.reports import comparison_table

        rows = compare_scoring(run, evaluation=evaluation)
        table = comparison_table(rows, SCORING_KEYS, label="method")
        write_text_atomic(paths.root / "scoring_methods.md", table + "\n")
        print(table)
    if args.min_defect_area:
        from cae_keras.decisions import compare_rules, rules_table, validation_maps
        from cae_keras.files import write_text_atomic

        table = rules_table(compare_rules(evaluation, *validation_maps(run), args.min_defect_area,
                                          run.config.scoring.threshold_quantile))
        write_text_atomic(paths.root / "decision_rules.md", table + "\n")
        print(table)
    m = evaluation.metrics
    if m["empty_masks"]:
        print(f"cae-keras: warning: defective test images with an empty mask: {len(m['empty_masks'])} (defective "
              "for image figures, their pixels normal for pixel figures; metrics.json: empty_masks)", file=sys.stderr)
    figures = ", ".join(f"{name} {_figure(m[key])}" for key, name in (
        ("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"), ("aupro", "AU-PRO")))
    figures += ", ".join(["", f"flagged {_share(m['false_alarm_rate'])} of good images",
                          f"missed {_share(m['miss_rate'])} of defective ones"])
    print(f"{m['model']} on {m['category']}: {figures}; report: {paths.root / 'report.md'}")
    for key, reason in m["null_reasons"].items():
        if key in ("image_auroc", "pixel_auroc", "aupro", "image_f1", "false_alarm_rate", "miss_rate"):
            print(f"  {key}: n/a ({reason})")
    return m


def _figure(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _share(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _predict(args) -> None:
    from cae_keras.prediction import exported_scorer, predict, run_scorer, summary_table

    scorer = run_scorer(args.run) if args.run else exported_scorer(args.model)
    results = predict(scorer, args.paths, args.out, save_maps=args.save_maps, batch_size=args.batch_size,
                      recursive=args.recursive)
    print(summary_table(results, scorer.threshold))
    print(f"maps, overlays and predictions.csv in {args.out}")


def _export(args) -> None:
    from cae_keras.export import export_run

    path = export_run(args.run, args.format, args.out)
    print(f"exported {args.format}: {path} (how to call it: {path}.json)")
    check = json.loads(Path(f"{path}.json").read_text()).get("int8_check")
    if check:
        print(f"int8 check on {check['images'] - check['anomalous']} validation normals and {check['anomalous']} "
              "with synthetic anomalies: "
              f"{check['decisions_flipped']} decisions differ from the float model's; scores differ by up to "
              f"{check['max_score_difference']:.3g} (threshold {check['threshold']:.3g})")


def _download(args) -> None:
    from cae_keras.download import Archive, download

    archive = Archive()
    if args.url:
        archive = Archive(url=args.url, sha256=args.sha256 or archive.sha256,
                          size=None if args.sha256 else archive.size)
    found = download(args.root, args.category, archive)
    print(f"extracted into {args.root}: {', '.join(found)}")


def _bench(args) -> None:
    import json

    from cae_keras.bench import exported_latency, run_benchmark
    from cae_keras.files import write_text_atomic

    result = run_benchmark(args.model, args.image_size, n_images=args.images, precision=args.precision,
                           jit_compile=args.jit_compile)
    if args.run:
        result["exported"] = exported_latency(args.run)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        write_text_atomic(args.out, text + "\n")


def _compare(args) -> None:
    from cae_keras.compare import COMPARISON_KEYS, compare
    from cae_keras.reports import comparison_table

    names = [name.strip() for name in args.models.split(",") if name.strip()]
    rows = compare(args.data, args.category, names, args.out, epochs=args.epochs, image_size=args.image_size,
                   batch_size=args.batch_size, seed=args.seed, precision=args.precision,
                   allow_empty_masks=args.allow_empty_masks)
    print(comparison_table(rows, COMPARISON_KEYS))
    print(f"table, JSON and figure in {args.out}")


def _demo(args) -> None:
    from cae_keras.compare import compare
    from cae_keras.config import DEFAULT_MODEL
    from cae_keras.reports import comparison_table
    from cae_keras.synth import SynthConfig, write_dataset

    started = time.perf_counter()
    _claim_demo_runs(args.runs)
    write_dataset(args.data, "bottle", SynthConfig(image_size=args.image_size))
    print(f"[demo] synthetic bottle written to {args.data / 'bottle'}")
    models = list(dict.fromkeys([DEFAULT_MODEL, "pixel_stats", "seed_cae"]))
    rows = compare(args.data, "bottle", models, args.runs, model_epochs={"seed_cae": args.epochs},
                   image_size=args.image_size)
    print()
    print(comparison_table(rows))
    print()
    python = os.path.relpath(sys.executable)
    print(f"[demo] {DEFAULT_MODEL} and pixel_stats are fitted in full (no epochs); seed_cae trained {args.epochs} "
          "epochs here, its full recipe is 200 (then evaluate the run):\n"
          f"       {python} -m cae_keras train --data {args.data} --category bottle "
          "--model seed_cae --run runs/seed_cae_full --epochs 200\n"
          f"       {python} -m cae_keras evaluate --run runs/seed_cae_full")
    print(f"[demo] reports: {args.runs}/<model>/report.md; table and figure: {args.runs}/comparison.md, "
          f"comparison.png; took {time.perf_counter() - started:.0f} s")


def _claim_demo_runs(runs: Path) -> None:
    """Marks the demo's runs folder with the synthetic bottle's version, refusing one made on another.

    The demo reuses complete runs; runs on an older bottle would give its old figures for the new one.

    Raises:
        ConfigError: the folder holds runs on another version of the bottle (or on an unrecorded one).
    """
    from cae_keras.errors import ConfigError
    from cae_keras.files import write_text_atomic
    from cae_keras.synth import VERSION

    marker = runs / "synth_version"
    if runs.is_dir() and any(runs.iterdir()):
        found = marker.read_text().strip() if marker.is_file() else "unrecorded (an earlier cae_keras)"
        if found != str(VERSION):
            raise ConfigError(f"{runs}: holds demo runs on synthetic bottle version {found}, not {VERSION}; "
                              "delete the folder or give another --runs")
    runs.mkdir(parents=True, exist_ok=True)
    write_text_atomic(marker, f"{VERSION}\n")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"cae-keras: warning: {message}", file=sys.stderr)


TENSORFLOW_COMMANDS = {"train", "evaluate", "predict", "export", "bench", "compare", "demo"}


def main(argv: list[str] | None = None) -> int:
    """Entry point. Returns the exit code: 0 ok, 1 an OS error, 2 a usage or data error, 130 interrupted."""
    import warnings

    from cae_keras import stopping

    args = _parser().parse_args(argv)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C and `kill` end alike: training stops at the next batch, one message, files intact.
        previous = {signum: signal.signal(signum, stopping.request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    with warnings.catch_warnings():  # restores Python's own display afterwards
        warnings.showwarning = _show_warning  # one line, like the errors
        try:
            return _run(args)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _run(args) -> int:
    """Runs one parsed command; returns the exit code."""
    try:
        if args.command in TENSORFLOW_COMMANDS:
            from cae_keras.quiet import quiet_tensorflow

            quiet_tensorflow(verbose=args.verbose)
        if args.command == "models":
            from cae_keras.models import REGISTRY

            print("\n".join(REGISTRY))
        else:
            {"synth": _synth, "train": _train, "evaluate": _evaluate, "predict": _predict,
             "download": _download, "bench": _bench, "export": _export, "compare": _compare, "demo": _demo}[args.command](args)
    except CaeKerasError as error:
        print(f"cae-keras: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"cae-keras: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cae-keras: interrupted; rerun the same command to resume from the last complete epoch",
              file=sys.stderr)
        return 130
    return 0
