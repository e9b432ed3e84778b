"""Does the default audio classifier (plain recurrence) beat keras SimpleRNN and GRU?

Held-out accuracy and macro F1 of three models that differ only in the recurrent layer:

  Recurrent  the default of `seqapps train audio`: seqapps.runs.train.build_model with the
             default settings (log-mel 40 mels with the default per-utterance CMVN ->
             FeatureNormalization -> Dropout 0.1 -> Recurrent(128) with the default
             activation -> mean-pooled softmax head)
  SimpleRNN  the same model, keras.layers.SimpleRNN(128) in place of Recurrent (tanh, orthogonal)
  GRU        the same model, keras.layers.GRU(128) in place of Recurrent (3x the weights; tanh, orthogonal)

The swap is done by building the very same SequenceClassifier with the keras layer as its
`recurrent_layer` factory, so normalisation, dropout, masking, pooling, head, optimiser
(Adam, default learning rate and clipnorm) and loss are identical by construction.

Features are computed once per data set with the model's own LogMelSpectrogram frontend
(pipelines.audio.audio_dataset(features=...)), and every model is trained on them for the
same number of epochs with the same batch size and the same seeded batch order, with no
early stopping (same budget). Evaluation is per clip, by the code `seqapps train` and
`seqapps evaluate` use (seqapps.runs.data.clip_predictions -> SequenceModel.predict_clip:
window probabilities averaged), on clips never seen in training:

  speech_music_silence  ../shared/data/audio/speech_music_silence: 120 real one-second
                        8 kHz clips, 3 classes; stratified 5-fold cross-validation.
  espeak_digits         "zero".."nine" from espeak-ng in 20 voices (benchmarks/espeak_digits.py);
                        4 folds by voice (StratifiedGroupKFold): the test voices never occur
                        in training, in any dialect.

`--gap` instead trains variants of the default model (more units, 2 layers, max pooling,
learning rate, epochs) and a GRU with the default's number of weights, beside the default
and the GRU, on the first 2 of the same espeak_digits folds: what closes a gap to the GRU.

Prints a table and writes bench_out/accuracy_audio.json (bench_out/accuracy_audio_gap.json
with --gap).

    PYTHONPATH=. .venv/bin/python benchmarks/accuracy_audio.py            # full, 8-16 min
    PYTHONPATH=. .venv/bin/python benchmarks/accuracy_audio.py --quick    # ~2 min
    PYTHONPATH=. .venv/bin/python benchmarks/accuracy_audio.py --gap      # ~10 min

`--seed N` changes folds, initialisation and batch order (the data stay the same),
`--models "A,B"` runs the default and the named models only, `--show FILE.json` prints
the tables of a written file.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.espeak_digits import INSTALL_HINT, espeak_available, generate_digits  # noqa: E402
from pipelines import sources  # noqa: E402
from pipelines.audio import audio_dataset  # noqa: E402
from pipelines.report import BadInputReport  # noqa: E402
from seqapps.runs.settings import AUDIO_EXTENSIONS, resolve_settings  # noqa: E402
from seqapps.runs.train import build_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REAL_DATA = ROOT.parent / "shared" / "data" / "audio" / "speech_music_silence"
OUT = ROOT / "bench_out"


# --------------------------------------------------------------------------- models


def make_classifier(settings: dict, class_names: list[str], *, layer_class=None):
    """The `seqapps train audio` model, optionally with a keras layer in place of Recurrent
    (SequenceModel's public `recurrent_layer` argument, passed through the model settings).

    Example:
    >>> model = make_classifier(resolve_settings("audio"), ["a", "b"], layer_class=keras.layers.GRU)
    """
    source = SimpleNamespace(class_names=class_names)
    if layer_class is not None:
        if settings["model"].get("truncate_bptt") is not None:  # None in the defaults
            raise ValueError("the keras contenders have no truncated BPTT; use truncate_bptt=None")
        settings = {**settings, "model": {**settings["model"], "recurrent_layer": layer_class}}
    return build_model("audio", "classify", settings, source)


# name -> (keras layer replacing Recurrent, or None; changes to the default settings)
CONTENDERS: dict[str, tuple] = {
    "Recurrent (default)": (None, {}),
    # The keras layers as keras makes them (tanh, orthogonal), whatever the default's activation.
    "SimpleRNN": (keras.layers.SimpleRNN, {"model": {"activation": "tanh", "recurrent_initializer": "orthogonal"}}),
    "GRU": (keras.layers.GRU, {"model": {"activation": "tanh", "recurrent_initializer": "orthogonal"}}),
}
# Variants of the default model for --gap (changes to the defaults). Recurrent with
# 256 units has about the weights of GRU with 128; GRU with 68 those of Recurrent with 128.
GAP_VARIANTS: dict[str, tuple] = {
    "Recurrent units=256": (None, {"model": {"units": 256}}),
    "Recurrent 2 layers": (None, {"model": {"num_layers": 2}}),
    "Recurrent pooling=max": (None, {"model": {"pooling": "max"}}),
    "Recurrent lr=0.001": (None, {"training": {"learning_rate": 0.001}}),
    "Recurrent 2x epochs": (None, {"training": {"epochs_factor": 2}}),
    "GRU units=68 (same weights)": (keras.layers.GRU, {"model": {"units": 68, "activation": "tanh",
                                                                 "recurrent_initializer": "orthogonal"}}),
    "Recurrent dropout=0.3": (None, {"model": {"dropout": 0.3}}),
    "Recurrent hidden_units=64": (None, {"model": {"hidden_units": 64}}),
    "Recurrent units=256 hidden_units=64": (None, {"model": {"units": 256, "hidden_units": 64}}),
}


def _merged(settings: dict, overrides: dict) -> dict:
    merged = copy.deepcopy(settings)
    for section, values in overrides.items():
        merged.setdefault(section, {}).update(values)
    return merged


# --------------------------------------------------------------------------- data


def window_features(source, *, settings: dict, cache_dir: Path) -> dict:
    """Log-mel windows of every clip, computed once with the default model's frontend.

    Returns {"features": [windows, frames, n_mels], "mask": [windows, frames] bool,
    "labels": [windows], "clip": [windows] (index into source.examples)}.
    """
    data = settings["data"]
    frontend = make_classifier(settings, source.class_names).frontend
    dataset = audio_dataset(
        source, None, sample_rate=data["sample_rate"], window_seconds=data["window_seconds"],
        hop_seconds=data["hop_seconds"], batch_size=64, shuffle=False, cache_dir=cache_dir,
        report=BadInputReport(), features=frontend, with_clip_index=True,
    )
    parts: dict[str, list] = {"features": [], "mask": [], "labels": [], "clip": []}
    for inputs, labels in dataset:
        parts["features"].append(inputs["inputs"].numpy())
        parts["mask"].append(np.asarray(inputs["mask"]))
        parts["labels"].append(labels.numpy())
        parts["clip"].append(inputs["clip_index"].numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


def clip_folds(source, *, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train clips, test clips) per fold; clips of one group never on both sides."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels = source.labels_as_ids()
    groups = np.array([e.group or e.path for e in source.examples])
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels, groups))


# --------------------------------------------------------------------------- training


def _batches(windows: dict, rows: np.ndarray, *, batch_size: int, seed: int | None):
    inputs = {"features": windows["features"][rows], "mask": windows["mask"][rows]}
    dataset = tf.data.Dataset.from_tensor_slices((inputs, windows["labels"][rows]))
    if seed is not None:
        # The same seed gives every contender the same batch order in every epoch.
        dataset = dataset.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size)


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def predict_test_clips(model, source, test_clips, *, settings: dict):
    """(clips, true class ids, predicted class ids) of the usable `test_clips` of `source`.

    Predicted as `seqapps train` / `seqapps evaluate` do (seqapps.runs.data.clip_predictions:
    decode each clip, SequenceModel.predict_clip cuts it into windows in the graph,
    predicts them and averages their probabilities), not by a benchmark's own aggregation.
    """
    from seqapps.runs.data import clip_predictions

    clips, probabilities, truth = clip_predictions(model, "audio", source, test_clips, data=settings["data"],
                                                   cache_dir=OUT / "cache", report=BadInputReport())
    return clips, truth, probabilities.argmax(axis=1)


def train_and_test(make_model: Callable[[], keras.Model], windows: dict, train_clips, test_clips, *,
                   source, settings: dict, n_classes: int, seed: int) -> dict:
    """Fit on the windows of `train_clips`, evaluate per clip on `test_clips` of `source`."""
    from sklearn.metrics import accuracy_score, f1_score

    training = settings["training"]
    keras.utils.set_random_seed(seed)
    model = make_model()
    model.compile(optimizer=keras.optimizers.Adam(training["learning_rate"], clipnorm=training["clipnorm"]))
    train_rows = np.flatnonzero(np.isin(windows["clip"], train_clips))
    # Normalisation statistics from the training windows only, as `seqapps train` does.
    model.normalization.adapt([(windows["features"][train_rows], windows["mask"][train_rows])])
    epochs = training["epochs"] * training.get("epochs_factor", 1)
    timer = _EpochTimer()
    start = time.perf_counter()
    model.fit(_batches(windows, train_rows, batch_size=training["batch_size"], seed=seed),
              epochs=epochs, shuffle=False, callbacks=[timer], verbose=0)
    train_seconds = time.perf_counter() - start
    clips, truth, predicted = predict_test_clips(model, source, test_clips, settings=settings)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", labels=np.arange(n_classes),
                                   zero_division=0)),
        "train_seconds": train_seconds,
        # The first epoch includes tracing the graph; later ones are the steady cost.
        "epoch_seconds": statistics.median(timer.seconds[1:] or timer.seconds),
        "first_epoch_seconds": timer.seconds[0],
        "params": int(model.count_params()),
        "epochs": int(epochs),
        "train_windows": len(train_rows),
        "test_clips": len(clips),
    }


def _summary(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def compare(source, windows: dict, *, settings: dict, contenders: dict, n_splits: int, max_folds: int,
            seed: int, log=print) -> dict:
    """Every contender on the same folds; per-fold results and mean / std over folds."""
    folds = clip_folds(source, n_splits=n_splits, seed=seed)[:max_folds]
    results = {name: [] for name in contenders}
    for fold, (train_clips, test_clips) in enumerate(folds):
        # Rotate the order per fold, so that load from other processes on this shared
        # machine does not always hit the same contender's timing.
        names = list(contenders)
        names = names[fold % len(names):] + names[:fold % len(names)]
        for name in names:
            layer_class, overrides = contenders[name]
            run_settings = _merged(settings, overrides)

            def make(run_settings=run_settings, layer_class=layer_class):
                return make_classifier(run_settings, source.class_names, layer_class=layer_class)

            result = train_and_test(make, windows, train_clips, test_clips, source=source, settings=run_settings,
                                    n_classes=len(source.class_names), seed=seed + fold)
            results[name].append(result)
            log(f"  fold {fold + 1}/{len(folds)} {name:28s} acc {result['accuracy']:.3f} "
                f"F1 {result['macro_f1']:.3f}  {result['train_seconds']:6.1f} s")
    return {
        name: {
            "folds": runs,
            "params": runs[0]["params"],
            "epochs": runs[0]["epochs"],
            **{key: _summary([r[key] for r in runs]) for key in ("accuracy", "macro_f1", "train_seconds", "epoch_seconds")},
        }
        for name, runs in results.items()
    }


# --------------------------------------------------------------------------- report


def table(name: str, result: dict, *, reference: str = "Recurrent (default)") -> str:
    """A Markdown table of one data set's comparison."""
    lines = [
        f"{name}: {result['clips']} clips, {result['classes']} classes, {result['folds']} held-out folds "
        f"({result['split']}), {result['epochs']} epochs",
        "",
        "| model | weights | accuracy | macro F1 | F1 vs default (folds better / worse) "
        "| train s / fold | s / epoch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = result["models"][reference]
    for model_name, r in result["models"].items():
        a, f = r["accuracy"], r["macro_f1"]
        delta = ""
        if model_name != reference:
            # Paired by fold: every model saw the same train and test clips in a fold.
            diffs = [m["macro_f1"] - b["macro_f1"] for m, b in zip(r["folds"], base["folds"], strict=False)]
            better, worse = sum(d > 1e-9 for d in diffs), sum(d < -1e-9 for d in diffs)
            delta = f"{statistics.fmean(diffs):+.3f} ({better} / {worse})"
        lines.append(f"| {model_name} | {r['params']:,} | {a['mean']:.3f} ± {a['std']:.3f} | "
                     f"{f['mean']:.3f} ± {f['std']:.3f} | {delta} | {r['train_seconds']['mean']:.1f} | "
                     f"{r['epoch_seconds']['mean']:.2f} |")
    return "\n".join(lines)


def run_dataset(name: str, source, *, settings: dict, contenders: dict, n_splits: int, max_folds: int,
                split: str, seed: int) -> dict:
    print(f"\n{name}: computing log-mel features once ...", flush=True)
    start = time.perf_counter()
    windows = window_features(source, settings=settings, cache_dir=OUT / "cache")
    print(f"  {len(windows['labels'])} windows of {windows['features'].shape[1:]} "
          f"in {time.perf_counter() - start:.1f} s", flush=True)
    models = compare(source, windows, settings=settings, contenders=contenders, n_splits=n_splits,
                     max_folds=max_folds, seed=seed)
    return {
        "clips": len(source.examples),
        "classes": len(source.class_names),
        "class_names": source.class_names,
        "groups": len({e.group or e.path for e in source.examples}),
        "folds": min(n_splits, max_folds),
        "n_splits": n_splits,
        "split": split,
        "epochs": next(iter(models.values()))["epochs"],
        "models": models,
    }


def print_tables(results: dict) -> None:
    for name, result in results["datasets"].items():
        if "models" in result:
            print(table(name, result), end="\n\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer folds, epochs and clips (~2 min)")
    parser.add_argument("--gap", action="store_true",
                        help="variants of the default on 2 espeak-digit folds (writes accuracy_audio_gap.json)")
    parser.add_argument("--epochs", type=int, default=None, help="override the default 30 epochs")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the folds, initialisation and batch order (the data stay the same)")
    parser.add_argument("--real-data", default=str(REAL_DATA))
    parser.add_argument("--digits-dir", default=str(OUT / "espeak_digits"))
    parser.add_argument("--out", default=None, help="default bench_out/accuracy_audio[_gap].json")
    parser.add_argument("--models", metavar="NAMES",
                        help="comma-separated model names to run (default: all of the mode)")
    parser.add_argument("--show", metavar="JSON", help="print the tables of a written JSON file and exit")
    args = parser.parse_args(argv)
    if args.show:
        print_tables(json.loads(Path(args.show).read_text()))
        return 0
    out = Path(args.out or OUT / ("accuracy_audio_gap.json" if args.gap else "accuracy_audio.json"))

    contenders = CONTENDERS
    if args.gap:  # SimpleRNN is measured by the main run; here the question is the GRU gap
        contenders = {name: CONTENDERS[name] for name in ("Recurrent (default)", "GRU")} | GAP_VARIANTS
    if args.models:
        known = CONTENDERS | GAP_VARIANTS
        wanted = [name.strip() for name in args.models.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in known]
        if unknown:
            parser.error(f"unknown --models {unknown}; known: {', '.join(known)}")
        # The default stays first: the table compares every model with it.
        contenders = {name: known[name] for name in dict.fromkeys(["Recurrent (default)", *wanted])}

    settings = resolve_settings("audio")
    if args.quick:
        settings["training"]["epochs"] = 6
    if args.epochs is not None:
        settings["training"]["epochs"] = args.epochs
    results: dict = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "tensorflow": tf.__version__, "keras": keras.__version__, "cpus": os.cpu_count()},
        "settings": settings,
        "quick": args.quick,
        "gap": args.gap,
        "seed": args.seed,
        "datasets": {},
    }
    started = time.perf_counter()

    real = Path(args.real_data)
    if args.gap:
        pass  # the variants are measured where the default loses: the spoken digits
    elif real.is_dir():
        source = sources.from_directory(real, extensions=AUDIO_EXTENSIONS, kind="audio")
        results["datasets"]["speech_music_silence"] = run_dataset(
            "speech_music_silence", source, settings=settings, contenders=contenders,
            n_splits=5, max_folds=2 if args.quick else 5, split="stratified 5-fold, one clip per source",
            seed=args.seed)
    else:
        print(f"\nspeech_music_silence: skipped, {real} not found (the shared real data is not in a fresh clone)")
        results["datasets"]["speech_music_silence"] = {"skipped": f"{real} not found"}

    if espeak_available():
        print("\nespeak_digits: generating clips (cached) ...", flush=True)
        manifest = generate_digits(Path(args.digits_dir) / ("quick" if args.quick else "full"),
                                   renditions=1 if args.quick else 3, seed=0)
        source = sources.from_manifest(manifest)
        results["datasets"]["espeak_digits"] = run_dataset(
            "espeak_digits", source, settings=settings, contenders=contenders,
            n_splits=4, max_folds=2 if args.quick or args.gap else 4,
            split="4 folds by voice, test voices unseen", seed=args.seed)
    else:
        print(f"\nespeak_digits: skipped. {INSTALL_HINT}")
        results["datasets"]["espeak_digits"] = {"skipped": INSTALL_HINT}

    results["total_seconds"] = time.perf_counter() - started
    print()
    print_tables(results)
    print(f"total {results['total_seconds'] / 60:.1f} min")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
