"""Will the default audio classifier work on voices it has never heard? Leave-voices-out folds.

Data: benchmarks/proxy_speakers.py (spoken digits in ~23 synthetic voices through random
rooms, EQ, real noise, phone bands and lossy codecs), written once under
~/.cache/seqapps/proxy. Folds: StratifiedGroupKFold by voice, so every test voice (with all
its speed, pitch and channel variants) is absent from training.

Two tables, each measured in one run with the same folds, budget and seeded batch order:

  models    the default of `seqapps train audio` (seqapps.runs.train.build_model with the
            current defaults), and the same model with keras SimpleRNN or GRU in place of
            Recurrent (benchmarks/accuracy_audio.make_classifier): same frontend,
            normalisation, dropout, pooling, head, optimiser, loss and epochs.
  remedies  the default with one change each (per-utterance CMVN, SpecAugment, relu +
            identity W_s, bidirectional, LR schedule, label smoothing, trimming, ...),
            with every change whose setting does not exist in this checkout reported as
            unavailable rather than silently skipped.

Features are computed once per distinct `data` section with the model's own frontend;
training uses no early stopping (same budget). Every number is a mean ± std over folds
of clip accuracy and macro F1; the paired column counts folds better / worse than the
default. Results go to bench_out/speaker_independence.json after every fold.

    PYTHONPATH=. .venv/bin/python benchmarks/speaker_independence.py --table models
    PYTHONPATH=. .venv/bin/python benchmarks/speaker_independence.py --table remedies
    PYTHONPATH=. .venv/bin/python benchmarks/speaker_independence.py --show bench_out/speaker_independence_models.json
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
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import accuracy_audio  # noqa: E402
from benchmarks.proxy_speakers import DEFAULT_OUT, augmentation_noise_files, generate_proxy  # noqa: E402
from pipelines import sources  # noqa: E402
from seqapps.errors import ConfigError  # noqa: E402
from seqapps.runs.settings import resolve_settings  # noqa: E402

OUT = accuracy_audio.OUT
DEFAULT = "Recurrent (default)"
MODELS = {
    DEFAULT: (None, {}),
    "SimpleRNN": (keras.layers.SimpleRNN, {}),
    "GRU": (keras.layers.GRU, {}),
}
# Training-time noise: the half of ../shared/data/audio that the proxy's channels do not use.
NOISE_FOLDER = str(DEFAULT_OUT.parent / "proxy_noise")
# Training-time noise: the half of ../shared/data/audio that the proxy's channels do not use.
NOISE_FOLDER = str(DEFAULT_OUT.parent / "proxy_noise")
# One change each to the defaults (Recurrent). Settings that do not exist in this checkout
# are reported as unavailable.
REMEDIES = {
    DEFAULT: {},
    "CMVN (per utterance)": {"data": {"normalization": "utterance"}},
    "SpecAugment": {"model": {"spec_augment": {}}},
    "relu + identity W_s": {"model": {"activation": "relu", "recurrent_initializer": "identity"}},
    "bidirectional": {"model": {"bidirectional": True}},
    "cosine LR (2 warm-up epochs)": {"training": {"lr_schedule": "cosine", "warmup_epochs": 2}},
    "label smoothing 0.1": {"training": {"label_smoothing": 0.1}},
    "trim silence": {"data": {"placement": "trim"}},
    "centre the speech": {"data": {"placement": "centre"}},
    "noise mixing": {"augmentation": {"noise_dir": NOISE_FOLDER}},
    "gain + time shift": {"augmentation": {"gain_db": 6.0, "time_shift_seconds": 0.1}},
    "speed perturbation": {"augmentation": {"speed": [0.9, 1.1]}},
    "MFCC + deltas": {"data": {"features": "mfcc", "deltas": 2}},
}


def merged(settings: dict, overrides: dict) -> dict:
    out = copy.deepcopy(settings)
    for section, values in overrides.items():
        out.setdefault(section, {}).update(values)
    return out


def available(overrides: dict) -> str | None:
    """None when every key of `overrides` is a setting here, else the reason."""
    try:
        resolve_settings("audio", overrides=overrides)
    except ConfigError as err:
        return str(err)
    return None


# --------------------------------------------------------------------------- data


def noise_folder() -> str:
    """NOISE_FOLDER filled with links to the proxy's spare noise recordings."""
    folder = Path(NOISE_FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    for path in augmentation_noise_files():
        link = folder / f"{path.parent.name}_{path.name}"
        if not link.exists():
            link.symlink_to(path)
    return NOISE_FOLDER


def window_waveforms(source, *, settings: dict, cache_dir: Path) -> dict:
    """Raw windows of every clip, in the order of accuracy_audio.window_features."""
    from pipelines.audio import audio_dataset
    from pipelines.report import BadInputReport

    data = settings["data"]
    dataset = audio_dataset(
        source, None, sample_rate=data["sample_rate"], window_seconds=data["window_seconds"],
        hop_seconds=data["hop_seconds"], batch_size=64, shuffle=False, cache_dir=cache_dir,
        report=BadInputReport(), with_clip_index=True,
    )
    parts: dict[str, list] = {"inputs": [], "mask": [], "clip": []}
    for inputs, _ in dataset:
        parts["inputs"].append(inputs["inputs"].numpy())
        parts["mask"].append(np.asarray(inputs["mask"]))
        parts["clip"].append(inputs["clip_index"].numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


def uses_waveform_augmentation(overrides: dict) -> bool:
    return bool(overrides.get("augmentation"))


# --------------------------------------------------------------------------- training


def compile_model(model: keras.Model, training: dict) -> list:
    """Compile as `seqapps train` does (Adam, clipnorm, label smoothing); its LR callbacks."""
    from seqapps.runs import train as run_train

    loss = run_train._loss("classify", training) if hasattr(run_train, "_loss") else None
    model.compile(optimizer=keras.optimizers.Adam(training["learning_rate"], clipnorm=training["clipnorm"]),
                  loss=loss)
    if not training.get("lr_schedule"):
        return []
    from seqapps.training import learning_rate_callback

    return [learning_rate_callback(training["lr_schedule"], learning_rate=training["learning_rate"],
                                   epochs=training["epochs"], warmup_epochs=training["warmup_epochs"],
                                   patience=training["patience"])]


def _batches(inputs: dict, labels, rows, *, batch_size: int, seed: int | None):
    dataset = tf.data.Dataset.from_tensor_slices(({k: v[rows] for k, v in inputs.items()}, labels[rows]))
    if seed is not None:
        # The same seed gives every contender the same batch order in every epoch.
        dataset = dataset.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size)


def train_and_test(make_model, windows: dict, train_clips, test_clips, *, source, settings: dict, n_classes: int,
                   seed: int, groups: np.ndarray, raw: dict | None = None) -> dict:
    """Fit on the windows of `train_clips` (features, or `raw` waveforms for waveform
    augmentation in the frontend), evaluate per clip on `test_clips`."""
    from sklearn.metrics import accuracy_score, f1_score

    training = settings["training"]
    keras.utils.set_random_seed(seed)
    model = make_model()
    train_rows = np.flatnonzero(np.isin(windows["clip"], train_clips))
    callbacks = compile_model(model, training)
    # Normalisation statistics from the clean training windows only, as `seqapps train`.
    model.normalization.adapt([(windows["features"][train_rows], windows["mask"][train_rows])])
    if raw is None:
        inputs = {"features": windows["features"], "mask": windows["mask"]}
    else:
        inputs = {"inputs": raw["inputs"], "mask": raw["mask"]}
    start = time.perf_counter()
    model.fit(_batches(inputs, windows["labels"], train_rows, batch_size=training["batch_size"], seed=seed),
              epochs=training["epochs"], shuffle=False, callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - start
    # Per clip as `seqapps train` / `seqapps evaluate` (SequenceModel.predict_clip on the
    # decoded clip; the frontend's training-only augmentation is off there).
    clips, truth, predicted = accuracy_audio.predict_test_clips(model, source, test_clips, settings=settings)
    correct, voices = predicted == truth, groups[clips]
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", labels=np.arange(n_classes), zero_division=0)),
        "train_seconds": seconds, "params": int(model.count_params()), "test_clips": len(clips),
        "per_voice_accuracy": {str(v): float(correct[voices == v].mean()) for v in np.unique(voices)},
    }


# --------------------------------------------------------------------------- report


def summary(values):
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def table(result: dict) -> str:
    lines = [
        f"{result['title']}: {result['clips']} clips, {result['voices']} voices, {result['n_folds']} "
        f"leave-voices-out folds, {result['epochs']} epochs"
        + (f"; every row with {json.dumps(result['config'])}" if result.get("config") else ""),
        "",
        "| model | weights | accuracy | macro F1 | F1 vs default (folds better / worse) | train s / fold |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = result["rows"]
    base = rows.get(DEFAULT, {}).get("folds", [])
    for name, row in rows.items():
        if "unavailable" in row:
            lines.append(f"| {name} | | not in this checkout | | | |")
            continue
        folds = row["folds"]
        if not folds:
            continue
        acc, f1 = summary([f["accuracy"] for f in folds]), summary([f["macro_f1"] for f in folds])
        delta = ""
        if name != DEFAULT and base:
            diffs = [f["macro_f1"] - b["macro_f1"] for f, b in zip(folds, base, strict=False)]
            delta = (f"{statistics.fmean(diffs):+.3f} ({sum(d > 1e-9 for d in diffs)} / "
                     f"{sum(d < -1e-9 for d in diffs)})")
        partial = "" if len(folds) == result["n_folds"] else f" ({len(folds)} folds)"
        lines.append(f"| {name}{partial} | {folds[0]['params']:,} | {acc['mean']:.3f} ± {acc['std']:.3f} | "
                     f"{f1['mean']:.3f} ± {f1['std']:.3f} | {delta} | "
                     f"{statistics.fmean(f['train_seconds'] for f in folds):.0f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def contenders_for(which: str, names: list[str] | None) -> dict:
    """name -> (keras layer or None, overrides) for the chosen table."""
    if which == "models":
        chosen = dict(MODELS)
    else:
        chosen = {name: (None, overrides) for name, overrides in REMEDIES.items()}
    if names:
        unknown = [n for n in names if n not in chosen]
        if unknown:
            raise SystemExit(f"unknown names {unknown}; known: {', '.join(chosen)}")
        chosen = {n: chosen[n] for n in dict.fromkeys([DEFAULT, *names])}
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=("models", "remedies"), default="models")
    parser.add_argument("--names", help="comma-separated rows to run (the default is always run)")
    parser.add_argument("--extra", metavar="JSON", action="append", default=[],
                        help='an extra remedy row: NAME=JSON overrides, e.g. \'all={"model": {...}}\'')
    parser.add_argument("--config", metavar="JSON", default=None,
                        help="changes to the defaults for every row (a candidate default); keras layers "
                             "keep their own activation and recurrent initializer (tanh, orthogonal)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-folds", type=int, default=None, help="run only the first N folds")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--renditions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=str(DEFAULT_OUT))
    parser.add_argument("--out", default=None, help="default bench_out/speaker_independence_TABLE.json")
    parser.add_argument("--extra-only", action="store_true", help="run the default and the --extra rows only")
    parser.add_argument("--skip-default", action="store_true",
                        help="leave the default row out (it is in another file of the same folds; see --show)")
    parser.add_argument("--show", metavar="JSON", nargs="+",
                        help="print the table of written files and exit (rows of later files are added to the first)")
    args = parser.parse_args(argv)
    if args.show:
        result = json.loads(Path(args.show[0]).read_text())
        for extra in args.show[1:]:
            more = json.loads(Path(extra).read_text())
            if more["fold_test_voices"] != result["fold_test_voices"] or more["epochs"] != result["epochs"]:
                raise SystemExit(f"{extra} has other folds or epochs than {args.show[0]}")
            result["rows"].update({k: v for k, v in more["rows"].items() if k not in result["rows"]})
        print(table(result))
        return 0
    out = Path(args.out or OUT / f"speaker_independence_{args.table}.json")
    contenders = contenders_for(args.table, [n.strip() for n in args.names.split(",")] if args.names else None)
    extras = []
    for extra in args.extra:
        name, _, overrides = extra.partition("=")
        contenders[name] = (None, json.loads(overrides))
        extras.append(name)
    if args.extra_only:
        contenders = {name: row for name, row in contenders.items() if name == DEFAULT or name in extras}
    if args.skip_default:
        contenders.pop(DEFAULT)

    manifest = generate_proxy(args.data_dir, renditions=args.renditions, seed=0)
    noise_folder()
    source = sources.from_manifest(manifest)
    base = resolve_settings("audio", overrides={"training": {"epochs": args.epochs}})
    base = merged(base, json.loads(args.config)) if args.config else base
    folds = accuracy_audio.clip_folds(source, n_splits=args.folds, seed=args.seed)[:args.max_folds]
    result = {
        "title": f"proxy speakers, table {args.table}",
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "tensorflow": tf.__version__,
                    "keras": keras.__version__, "cpus": os.cpu_count()},
        "command": " ".join(["benchmarks/speaker_independence.py", *(argv if argv is not None else sys.argv[1:])]),
        "config": json.loads(args.config) if args.config else {}, "settings": base, "clips": len(source.examples), "voices": len({e.group for e in source.examples}),
        "n_folds": len(folds), "epochs": args.epochs, "seed": args.seed,
        "fold_test_voices": [sorted({source.examples[i].group for i in test}) for _, test in folds],
        "rows": {},
    }
    runnable = {}
    for name, (layer_class, overrides) in contenders.items():
        reason = available(overrides)
        if reason:
            result["rows"][name] = {"unavailable": reason}
            print(f"{name}: unavailable ({reason})", flush=True)
        else:
            result["rows"][name] = {"overrides": overrides, "folds": []}
            settings = merged(base, overrides)
            if layer_class is not None:  # SimpleRNN and GRU as keras makes them
                settings["model"].update(activation="tanh", recurrent_initializer="orthogonal")
            runnable[name] = (layer_class, settings)
    features: dict[str, dict] = {}
    waveforms: dict[str, dict] = {}
    groups = np.array([e.group for e in source.examples])
    started = time.perf_counter()
    for fold, (train_clips, test_clips) in enumerate(folds):
        for name, (layer_class, settings) in runnable.items():
            key = json.dumps(settings["data"], sort_keys=True)
            if key not in features:
                t = time.perf_counter()
                features[key] = accuracy_audio.window_features(source, settings=settings, cache_dir=OUT / "cache")
                print(f"features for {name}: {features[key]['features'].shape} in {time.perf_counter() - t:.0f} s",
                      flush=True)
            raw = None
            if uses_waveform_augmentation(contenders[name][1]):
                if key not in waveforms:
                    waveforms[key] = window_waveforms(source, settings=settings, cache_dir=OUT / "cache")
                raw = waveforms[key]

            def make(settings=settings, layer_class=layer_class, augmented=raw is not None):
                if augmented:  # the frontend mixes noise: build it as `seqapps train` does
                    from seqapps.runs.train import build_model, run_noise

                    return build_model("audio", "classify", settings, SimpleNamespace(class_names=source.class_names),
                                       noise=run_noise("audio", settings))
                return accuracy_audio.make_classifier(settings, source.class_names, layer_class=layer_class)

            run = train_and_test(make, features[key], train_clips, test_clips, source=source, settings=settings,
                                 n_classes=len(source.class_names), seed=args.seed + fold, groups=groups, raw=raw)
            result["rows"][name]["folds"].append(run)
            print(f"fold {fold + 1}/{len(folds)} {name:28s} acc {run['accuracy']:.3f} F1 {run['macro_f1']:.3f} "
                  f"{run['train_seconds']:5.0f} s", flush=True)
            result["total_seconds"] = time.perf_counter() - started
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=1))  # after every fold: nothing is lost
    print()
    print(table(result))
    print(f"total {(time.perf_counter() - started) / 60:.1f} min; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
