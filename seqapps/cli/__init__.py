"""The `seqapps` command line: thin; parses, calls library functions, prints.

A user's mistake (missing folder, no media found, unknown value, a run without a
model) is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from seqapps.cli.checks import usage_problem

# Only the standard library at import time: `seqapps --help` and usage errors never
# load TensorFlow. Every command imports what it needs inside its handler.

EXAMPLES = {
    "train": "seqapps train audio data/words --run-dir runs/words --epochs 20 [--group-pattern digits --folds 5]",
    "evaluate": "seqapps evaluate runs/words data/held_out --json",
    "predict": "seqapps predict runs/words clip1.wav clip2.wav --json",
    "export": "seqapps export runs/words --name words --base-dir saved_models",
    "diagnose": "seqapps diagnose runs/words --data data/words --out runs/words/diagnose",
    "demo": "seqapps demo --out demo_out",
    "detect": "seqapps detect runs/words long.wav --threshold 0.8 --json",
    "listen": "seqapps listen runs/words --seconds 60",
}


def _train(args) -> int:
    from seqapps import distribute
    from seqapps.runs.train import train_run

    strategy = distribute.make_strategy(
        args.strategy, collective_timeout_seconds=args.collective_timeout, heartbeat_timeout_seconds=args.heartbeat_timeout,
    )
    if args.folds is not None:
        return _cross_validate(args, strategy)
    try:
        metrics = train_run(
            args.kind, run_dir=args.run_dir, data_dir=args.data_dir, manifest=args.manifest, task=args.task,
            epochs=args.epochs, config_file=args.config, strict=args.strict, target_columns=args.target_columns,
            verbose=1 if sys.stdout.isatty() else 2, strategy=strategy, per_replica_batch=args.per_replica_batch,
            group_pattern=args.group_pattern, test_dir=args.test_dir, test_manifest=args.test_manifest,
        )
    except distribute.WorkerLost as err:
        # The runtime may still wait on the dead peer (aborted collectives, shutdown
        # barrier): leave now, after saying why, instead of risking a hang at exit.
        print(f"seqapps train: error: {err}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)
    if not distribute.is_chief(strategy):
        print(f"worker done ({distribute.describe(strategy)}); the chief wrote {args.run_dir}")
        return 0
    shown = metrics.get("test", metrics["val"])
    name = "test" if "test" in metrics else "validation"
    keys = ("accuracy", "macro_f1") if "accuracy" in shown else ("mae", "rmse", "r2")
    print(f"{name}: " + ", ".join(f"{k}={shown[k]:.4f}" for k in keys) + f" (n={shown['n']}); run folder: {args.run_dir}")
    return 0


def _detection_settings(args):
    from seqapps.layers.detection import DetectionSettings

    return DetectionSettings(average_window_ms=args.window_ms, threshold=args.threshold,
                             suppression_ms=args.suppression_ms, minimum_count=args.minimum_count)


def _evaluate_streaming(args) -> int:
    from seqapps.runs.detect import evaluate_streaming

    metrics = evaluate_streaming(args.run_dir, args.streaming, settings=_detection_settings(args),
                                 background=args.background, tolerance_ms=args.tolerance_ms,
                                 block_seconds=args.block_seconds)
    if args.json:
        print(json.dumps(metrics))
        return 0
    latency = metrics["latency_ms"]["median_from_end"]
    miss = metrics["miss_rate"]
    print(f"{metrics['events']} events in {metrics['hours'] * 60:.1f} min: matched {metrics['matched']}, "
          f"wrong {metrics['wrong']}, false {metrics['false']}; false accepts/hour "
          f"{metrics['false_accepts_per_hour']:.2f}, miss rate {'n/a' if miss is None else f'{miss:.3f}'}, "
          f"median latency after the event's end {'n/a' if latency is None else f'{latency:.0f} ms'}")
    return 0


def _detect(args) -> int:
    from seqapps.errors import BadMediaError
    from seqapps.runs.detect import detect_file, load_streaming_model

    model = load_streaming_model(args.model)
    failures = 0
    for file in args.files:
        def show(event, file=file):
            if args.json:
                print(json.dumps({"file": str(file), **event.as_dict()}), flush=True)
            else:
                print(f"{file}\t{event.label}\t{event.start:.2f}\t{event.end:.2f}\t{event.score:.3f}", flush=True)

        try:
            result = detect_file(model, file, settings=_detection_settings(args), background=args.background,
                                 block_seconds=args.block_seconds, on_event=show)
        except BadMediaError as err:
            failures += 1
            print(json.dumps({"file": str(file), "error": err.reason}) if args.json else f"{file}\terror: {err.reason}")
            continue
        for warning in result.warnings:  # the decoder's notes (FFmpeg's, captured): stderr, also with --json
            print(f"{file}: warning: {warning}", file=sys.stderr)
        if not args.json:
            print(f"{file}: {len(result.events)} events in {result.duration_seconds:.1f} s")
    return 1 if failures else 0


def _listen(args) -> int:
    from seqapps.runs.detect import listen

    def show(event):
        print(f"{event.label}\t{event.start:.2f}\t{event.end:.2f}\t{event.score:.3f}", flush=True)

    print("listening (Ctrl-C stops)", file=sys.stderr, flush=True)
    device = int(args.device) if args.device and args.device.isdigit() else args.device  # index or name
    listen(args.run_dir, settings=_detection_settings(args), background=args.background, device=device,
           block_seconds=args.block_seconds, max_seconds=args.seconds, on_event=show)
    return 0


def _cross_validate(args, strategy) -> int:
    from seqapps.runs.crossval import cross_validate_run

    # --folds with --test-dir / --test-manifest is refused by seqapps.cli.checks.
    summary = cross_validate_run(
        args.kind, run_dir=args.run_dir, folds=args.folds, data_dir=args.data_dir, manifest=args.manifest,
        task=args.task, epochs=args.epochs, config_file=args.config, strict=args.strict,
        target_columns=args.target_columns, group_pattern=args.group_pattern,
        verbose=1 if sys.stdout.isatty() else 2, strategy=strategy,
    )
    keys = ("accuracy", "macro_f1") if summary["task"] == "classify" else ("mae", "rmse", "r2")
    print(f"{summary['folds']}-fold group cross-validation (held-out groups): " + ", ".join(
        f"{k}={summary[k]['mean']:.4f} ± {summary[k]['std']:.4f}" for k in keys))
    hardest = ", ".join(f"{g['group']} ({g.get('accuracy', g.get('mae')):.3f}, n={g['n']})"
                        for g in summary["hardest_groups"])
    print(f"hardest groups: {hardest}")
    print(f"per fold and per group: {os.path.join(args.run_dir, 'cv', 'summary.json')}")
    return 0


def _evaluate(args) -> int:
    if args.streaming:
        return _evaluate_streaming(args)
    from seqapps.runs.evaluate import evaluate_run

    metrics = evaluate_run(args.run_dir, data_dir=args.data_dir, manifest=args.manifest, strict=args.strict)
    if args.json:
        print(json.dumps(metrics))
        return 0
    if "accuracy" in metrics:
        print(f"accuracy {metrics['accuracy']:.4f}  macro F1 {metrics['macro_f1']:.4f}  (n={metrics['n']})")
        for name, row in metrics["per_class"].items():
            print(f"  {name:>16}: precision {row['precision']:.3f} recall {row['recall']:.3f} "
                  f"f1 {row['f1-score']:.3f} support {int(row['support'])}")
        print("confusion matrix (rows true, columns predicted):")
        for row in metrics["confusion_matrix"]:
            print("  " + " ".join(f"{v:4d}" for v in row))
    else:
        print(f"MAE {metrics['mae']:.4f}  RMSE {metrics['rmse']:.4f}  R^2 {metrics['r2']:.4f}  (n={metrics['n']})")
    # The skipped files were summarised once on stderr while decoding (seqapps.runs.evaluate).
    return 0


def _predict(args) -> int:
    from seqapps.runs.evaluate import predict_files

    failures = 0
    for result in predict_files(args.model, args.files, windows=args.windows):
        if args.json:
            print(json.dumps(result))
        elif "error" in result:
            print(f"{result['file']}\terror: {result['error']}")
        elif "label" in result:
            print(f"{result['file']}\t{result['label']}\t{result['probability']:.4f}")
            for i, window in enumerate(result.get("windows", [])):
                print(f"  window {i}: " + " ".join(f"{v:.3f}" for v in window))
        else:
            print(f"{result['file']}\t" + " ".join(f"{v:.4f}" for v in result["values"]))
        failures += "error" in result
    return 1 if failures else 0


def _export(args) -> int:
    from pipelines.progress import progress
    from seqapps.runs.export import export_run

    # One step, but a long one (tracing every signature): a bar with the elapsed time on a
    # terminal, one line with the time taken in a log.
    with progress(total=1, description="export", unit="model", enabled=True) as bar:
        path = export_run(args.run_dir, base_dir=args.base_dir, name=args.name, version=args.version)
        bar.update(1)
    print(f"exported {path}")
    return 0


def _diagnose(args) -> int:
    from seqapps.runs.diagnose import diagnose_run

    summary = diagnose_run(args.run_dir, config_file=args.config, data_dir=args.data, out_dir=args.out)
    print(json.dumps(summary, indent=2))
    return 0


def _demo(args) -> int:
    from seqapps.runs.demo import run_demo

    run_demo(args.out, epochs=args.epochs)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqapps", description="Learn from audio and video sequences with a plain recurrent layer.",
        epilog="examples:\n  " + "\n  ".join(EXAMPLES.values()), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own start-up and log lines on stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help_text):
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  epilog=f"example:\n  {EXAMPLES[name]}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        # SUPPRESS: an absent sub-command flag must not reset `seqapps --verbose CMD`.
        sub.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="show TensorFlow's own start-up and log lines on stderr")
        return sub

    train = command("train", "train a classifier or regressor on a folder or manifest of media files")
    train.add_argument("kind", choices=["audio", "video"])
    train.add_argument("data_dir", nargs="?", help="folder with one sub-folder per class")
    train.add_argument("--manifest", help="CSV with columns path,label[,group][,split]")
    train.add_argument("--run-dir", required=True, help="folder for the model, metrics and plots")
    train.add_argument("--task", choices=["classify", "regress"], default="classify")
    train.add_argument("--target-columns", nargs="+", help="regression: manifest columns holding the targets")
    train.add_argument("--epochs", type=_positive_int)
    train.add_argument("--config", help="JSON file of settings (see README, 'Settings')")
    train.add_argument("--group-pattern", metavar="REGEX",
                       help="group (speaker) of each file from its name: a regex with (?P<group>...) or a preset: "
                            "digits ({digit}_{speaker}_{n}.wav), speech_commands ({speaker}_nohash_{n}.wav)")
    train.add_argument("--test-dir", help="a separate test folder (one sub-folder per class); nothing more is "
                                          "held out of the training data but val")
    train.add_argument("--test-manifest", help="a separate test manifest CSV (as --test-dir)")
    train.add_argument("--folds", type=_positive_int, metavar="K",
                       help="group cross-validation: train K folds of held-out groups; RUN/cv/summary.json")
    train.add_argument("--strict", action="store_true", help="a broken input file is an error naming it")
    train.add_argument("--strategy", choices=["auto", "default", "mirrored", "multi-worker"], default="auto",
                       help="tf.distribute strategy; auto: mirrored with >1 GPU, multi-worker when TF_CONFIG "
                            "names several workers, else default (see README)")
    train.add_argument("--per-replica-batch", action="store_true",
                       help="batch_size is per replica (global = batch_size x replicas, learning rate scaled "
                            "linearly); default: batch_size is the global batch")
    train.add_argument("--collective-timeout", type=_positive_float, default=600.0, metavar="SECONDS",
                       help="multi-worker: a collective op that waits longer fails (default 600)")
    train.add_argument("--heartbeat-timeout", type=_positive_float, default=30.0, metavar="SECONDS",
                       help="multi-worker: a worker silent this long is declared dead and the others stop (default 30)")
    train.set_defaults(run=_train)

    def detection_options(sub, *, block_seconds=2.0):
        group = sub.add_argument_group("detection (TF RecognizeCommands)")
        group.add_argument("--threshold", type=float, default=0.7, help="averaged score to fire (default 0.7)")
        group.add_argument("--window-ms", type=_positive_float, default=500.0,
                           help="averaging window (default 500)")
        group.add_argument("--suppression-ms", type=float, default=500.0,
                           help="quiet time after a detection (default 500)")
        group.add_argument("--minimum-count", type=_positive_int, default=4,
                           help="frames the window must hold before deciding (default 4)")
        group.add_argument("--background", nargs="+", metavar="LABEL",
                           help="classes never reported (default: _silence_, silence, _background_noise_, "
                                "background, where the model has them)")
        group.add_argument("--block-seconds", type=_positive_float, default=block_seconds,
                           help=f"audio per stream step (default {block_seconds})")

    evaluate = command("evaluate", "metrics of a trained run on held-out files")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("data_dir", nargs="?")
    evaluate.add_argument("--manifest")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--strict", action="store_true")
    evaluate.add_argument("--streaming", metavar="EVENTS_CSV",
                          help="streaming detection on long recordings listed in a CSV path,label,start,end "
                               "(RUN_DIR may also be a SavedModel)")
    evaluate.add_argument("--tolerance-ms", type=float, default=500.0,
                          help="--streaming: how far outside an event a detection still matches (default 500)")
    detection_options(evaluate)
    evaluate.set_defaults(run=_evaluate)

    detect = command("detect", "keyword / sound-event detection on long recordings, streamed in constant memory")
    detect.add_argument("model", help="run folder, or SavedModel folder (NAME or NAME/VERSION) with stream_raw")
    detect.add_argument("files", nargs="+")
    detect.add_argument("--json", action="store_true", help="one JSON object per event")
    detection_options(detect)
    detect.set_defaults(run=_detect)

    listen = command("listen", "detect keywords on a microphone (needs the extra: pip install 'seqapps[live]')")
    listen.add_argument("run_dir", help="run folder, or SavedModel folder with stream_raw")
    listen.add_argument("--device", help="sounddevice input device (name or index; default: the system's)")
    listen.add_argument("--seconds", type=_positive_float, help="stop after this long (default: Ctrl-C)")
    detection_options(listen, block_seconds=0.1)
    listen.set_defaults(run=_listen)

    predict = command("predict", "label (or values) for each file, from a run or a SavedModel")
    predict.add_argument("model", help="run folder, or SavedModel folder (NAME or NAME/VERSION)")
    predict.add_argument("files", nargs="+")
    predict.add_argument("--windows", action="store_true", help="also show per-window results")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")
    predict.set_defaults(run=_predict)

    export = command("export", "write a versioned SavedModel for TF Serving, atomically")
    export.add_argument("run_dir")
    export.add_argument("--name", required=True)
    export.add_argument("--base-dir", default="saved_models")
    export.add_argument("--version", type=_positive_int)
    export.set_defaults(run=_export)

    diagnose = command("diagnose", "gradient norms through time and W_s spectra of a model")
    diagnose.add_argument("run_dir", nargs="?", help="a trained run (or use --config for an untrained model)")
    diagnose.add_argument("--config", help="JSON settings of an untrained model to inspect")
    diagnose.add_argument("--data", help="data folder for the batch (default: the run's validation split)")
    diagnose.add_argument("--out", default="diagnose_out")
    diagnose.set_defaults(run=_diagnose)

    demo = command("demo", "make synthetic audio and video sets, train, evaluate and export both")
    demo.add_argument("--out", default="demo_out")
    demo.add_argument("--epochs", type=_positive_int)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from seqapps.errors import SeqappsError

    args = build_parser().parse_args(argv)
    problem = usage_problem(args)
    if problem:
        print(f"seqapps {args.command}: error: {problem}", file=sys.stderr)
        return 2
    if not args.verbose:
        from seqapps.cli.logs import import_tensorflow_quietly

        import_tensorflow_quietly()
    try:
        return args.run(args)
    except (SeqappsError, FileNotFoundError, NotADirectoryError) as err:
        print(f"seqapps {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqapps {args.command}: interrupted", file=sys.stderr)
        return 130
