"""`seqapps train`: a folder or manifest in, a trained and evaluated run folder out.

RUN/ receives: model.keras, config.json, labels.json (classification), split.csv,
bad_inputs.json, metrics.json, history.json/.csv, curves.png, confusion_matrix.png,
best.keras, logs/ (TensorBoard), cache/ and backup/ (while a run is unfinished).
Running the same command again after the process was killed resumes from the last
finished epoch, with the same split.

Under a tf.distribute strategy (`strategy=`, see seqapps.distribute) the model is built
and compiled in the strategy's scope; in a multi-worker run every worker runs this same
function, only the chief writes RUN/, the others write to a temporary folder (removed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import tensorflow as tf

from pipelines import sources
from pipelines.report import BadInputReport
from seqapps import distribute
from seqapps.atomic import atomic_path, write_json
from seqapps.errors import ConfigError
from seqapps.evaluation import (
    classification_metrics,
    plot_confusion_matrix,
    plot_history,
    regression_metrics,
)
from seqapps.runs import data as run_data
from seqapps.runs.settings import resolve_settings
from seqapps.tasks import SequenceClassifier, SequenceRegressor
from seqapps.training import (
    SparseSmoothedCrossentropy,
    balanced_class_weight,
    fit,
    learning_rate_callback,
)


def _load_or_make_split(run_dir: Path, source, training: dict, write_dir: Path | None = None):
    """Reuse RUN/split.csv when resuming, so a resumed run sees the same data."""
    path = run_dir / "split.csv"
    if path.exists():
        # Its own report: rows of files skipped at listing time are gone again, and
        # this run's report says so when it lists the folder.
        saved = sources.read_split(path, report=BadInputReport(strict=False))
        by_path = {e.path: i for i, e in enumerate(source.examples)}
        split = {name: [] for name in sources.SPLITS}
        for example in saved.examples:
            if example.path in by_path:
                split[example.split].append(by_path[example.path])
        return split
    split = sources.split_examples(
        source, val_fraction=training["val_fraction"], test_fraction=training["test_fraction"],
        seed=training["seed"],
    )
    sources.write_split((write_dir or run_dir) / "split.csv", source, split)
    return split


def build_model(kind: str, task: str, settings: dict, source, *, noise=None):
    """The task model the settings describe; `noise`: decoded background noise
    (seqapps.runs.speech.load_noise) when `augmentation.noise_dir` is set."""
    frontend, input_shape = run_data.make_frontend(kind, settings["data"], augmentation=settings.get("augmentation"),
                                                   noise=noise)
    model_settings = dict(settings["model"])
    spec_augment = model_settings.pop("spec_augment")
    if spec_augment is not None:
        from seqapps.layers.audio_frontends import SpecAugment

        # {} takes SpecAugment's defaults; a dict sets its arguments.
        model_settings["augmentation"] = SpecAugment(**(spec_augment or {}))
    common = {"input_shape": input_shape, "frontend": frontend, **model_settings}
    if task == "classify":
        return SequenceClassifier(num_classes=len(source.class_names), class_names=source.class_names, **common)
    return SequenceRegressor(num_targets=len(source.target_names), target_names=source.target_names, **common)


def evaluate_split(model, kind, source, indices, *, settings, run_dir, report) -> dict:
    """Clip-level metrics of `model` on examples `indices` of `source`."""
    _, predictions, targets = run_data.clip_predictions(
        model, kind, source, indices, data=settings["data"], cache_dir=run_dir / "cache", report=report)
    if source.task == "classify":
        return classification_metrics(targets, predictions, source.class_names)
    return regression_metrics(targets, predictions)


def train_run(kind: str, *, run_dir, data_dir=None, manifest=None, task="classify", epochs=None,
              config_file=None, strict=False, target_columns=None, verbose="auto",
              strategy: str | tf.distribute.Strategy = "default", per_replica_batch: bool = False,
              group_pattern: str | None = None, test_dir=None, test_manifest=None) -> dict:
    """Train, evaluate and write a run folder; returns the metrics dict.

    `strategy`: a tf.distribute.Strategy or a name for ``distribute.make_strategy``
    ("auto", "default", "mirrored", "multi-worker"). The settings' batch size is the
    global batch, split across replicas; with `per_replica_batch` it is the batch of each
    replica and the learning rate is scaled linearly (distribute.global_batch_and_learning_rate).
    `group_pattern`: groups (speakers) from file names (pipelines.groups.groups_from_names).
    `test_dir` / `test_manifest`: a separate test set; then only val is held out of the
    training data (by group), never a test part.
    """
    if isinstance(strategy, str):
        strategy = distribute.make_strategy(strategy)  # first: multi-worker must configure TF before use
    overrides = {"training": {"epochs": epochs}} if epochs is not None else None
    settings = resolve_settings(kind, config_file=config_file, overrides=overrides)
    report = BadInputReport(strict=strict)
    source = run_data.load_training_source(kind, data_dir=data_dir, manifest=manifest, task=task,
                                           target_columns=target_columns, report=report, group_pattern=group_pattern,
                                           test_dir=test_dir, test_manifest=test_manifest)
    if kind == "audio":
        from seqapps.runs.speech import fit_band_to_files

        fit_band_to_files(settings, source)
    return train_on_source(kind, source, run_dir=run_dir, settings=settings, strategy=strategy, report=report,
                           verbose=verbose, per_replica_batch=per_replica_batch,
                           noise=run_noise(kind, settings, data_dir))


def train_on_source(kind: str, source, *, run_dir, settings: dict, strategy: tf.distribute.Strategy,
                    report: BadInputReport, verbose="auto", per_replica_batch: bool = False, noise=None,
                    print_summary: bool = True) -> dict:
    """`train_run` on a loaded source (its split column, if any, is honoured).

    `print_summary`: print the bad-input summary on stderr once every split is decoded;
    cross-validation passes False for all folds but the first, so a run prints it once.
    """
    run_dir = Path(run_dir)
    training = settings["training"]
    keras.utils.set_random_seed(training["seed"])
    batch_size, learning_rate = distribute.global_batch_and_learning_rate(
        training["batch_size"], training["learning_rate"], replicas=strategy.num_replicas_in_sync,
        per_replica=per_replica_batch,
    )
    if distribute.is_chief(strategy):
        run_dir.mkdir(parents=True, exist_ok=True)
    with distribute.worker_run_dir(run_dir, strategy) as out_dir:
        split = _load_or_make_split(run_dir, source, training, out_dir)
        if not split["train"] or not split["val"]:
            groups = len({e.group or e.path for e in source.examples if e.split != "test"})
            hint = "" if any(e.group for e in source.examples) else "; derive groups from file names with --group-pattern"
            raise ConfigError(
                f"too few examples or groups to split into train and validation: "
                f"{len(source.examples)} usable examples in {groups} groups (a group never spans two splits){hint}"
            )
        return _train_and_evaluate(kind, source, split, settings=settings, strategy=strategy, run_dir=run_dir,
                                   out_dir=out_dir, batch_size=batch_size, learning_rate=learning_rate,
                                   report=report, verbose=verbose, noise=noise, print_summary=print_summary)


def run_noise(kind: str, settings: dict, data_dir=None):
    """Background noise decoded once for `augmentation.noise_dir` (None when not set)."""
    from seqapps.runs import speech

    folder = speech.noise_folder(settings.get("augmentation"), data_dir) if kind == "audio" else None
    return None if folder is None else speech.load_noise(folder, sample_rate=settings["data"]["sample_rate"])


def _train_and_evaluate(kind, source, split, *, settings, strategy, run_dir, out_dir, batch_size, learning_rate,
                        report, verbose, noise=None, print_summary=True) -> dict:
    training = settings["training"]
    with strategy.scope():
        model = build_model(kind, source.task, settings, source, noise=noise)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=training["clipnorm"]),
                      loss=_loss(source.task, training))
    cache = out_dir / "cache"
    make = dict(data=settings["data"], frontend=model.frontend, batch_size=batch_size,
                cache_dir=cache, report=report)
    train_ds = run_data.make_dataset(kind, source, split["train"], shuffle=True, seed=training["seed"], **make)
    val_ds = run_data.make_dataset(kind, source, split["val"], shuffle=False, seed=0, **make)
    # Decode (and cache) the test split now too: every file's fate is known before the
    # long part, the one summary is printed here, and split.csv says which were skipped.
    if split["test"]:
        run_data.make_dataset(kind, source, split["test"], shuffle=False, seed=0, **make)
    _report_decoding(report, out_dir, source, split, print_summary=print_summary)
    model.adapt(train_ds, steps=50)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Every worker builds the same seeded pipeline and keeps its share of each global
        # batch: equal steps on every worker, whatever the number and size of cache files.
        train_ds, val_ds = distribute.shard_by(train_ds, "data"), distribute.shard_by(val_ds, "data")

    class_weight = None
    if training["class_weight"] == "balanced" and source.task == "classify":
        class_weight = balanced_class_weight(source.labels_as_ids()[split["train"]], len(source.class_names))
    config = {"kind": kind, "task": source.task, "settings": settings,
              "preprocessing": run_data.preprocessing_config(kind, settings["data"])}
    write_json(out_dir / "config.json", config)
    if source.task == "classify":
        write_json(out_dir / "labels.json", source.class_names)
    else:
        write_json(out_dir / "targets.json", source.target_names)

    schedule = learning_rate_callback(training["lr_schedule"], learning_rate=learning_rate,
                                      epochs=training["epochs"], warmup_epochs=training["warmup_epochs"],
                                      patience=training["patience"])
    history = fit(model, train_ds, val_ds, run_dir=run_dir, epochs=training["epochs"],
                  patience=training["patience"], class_weight=class_weight, verbose=verbose,
                  extra_callbacks=[schedule] if schedule is not None else None)
    with atomic_path(out_dir / "model.keras") as tmp:
        model.save(tmp)
    full_history = _history_from_csv(out_dir / "history.csv") or history.history
    write_json(out_dir / "history.json", full_history)
    plot_history(full_history, out_dir / "curves.png")

    metrics = {"val": evaluate_split(model, kind, source, split["val"], settings=settings,
                                     run_dir=out_dir, report=report)}
    if split["test"]:
        metrics["test"] = evaluate_split(model, kind, source, split["test"], settings=settings,
                                         run_dir=out_dir, report=report)
    metrics["data"] = {name: len(idx) for name, idx in split.items()}
    metrics["data"]["skipped_files"] = len(report.skipped)
    write_json(out_dir / "metrics.json", metrics)
    report.save(out_dir / "bad_inputs.json")
    if source.task == "classify":
        shown = metrics.get("test", metrics["val"])
        plot_confusion_matrix(shown["confusion_matrix"], source.class_names, out_dir / "confusion_matrix.png")
    return metrics


def _report_decoding(report: BadInputReport, out_dir: Path, source, split, *, print_summary: bool = True) -> None:
    """Once per run, when every split is decoded: bad_inputs.json, split.csv with the
    skipped files marked (also those rejected while listing, with an empty split), and
    one summary on stderr (stdout stays for results)."""
    report.save(out_dir / "bad_inputs.json")
    skipped = {e["path"]: e["reason"] for e in report.skipped}
    sources.write_split(out_dir / "split.csv", source, split, skipped=skipped)
    if print_summary:
        print_report(report)


def print_report(report: BadInputReport) -> None:
    """The one bad-input summary of a run, on stderr; nothing when all inputs were good."""
    if report.count or report.warnings:
        print(report.summary(), file=sys.stderr, flush=True)


def _loss(task: str, training: dict):
    """The compile loss: the model's default, or label-smoothed cross-entropy."""
    smoothing = training.get("label_smoothing") or 0.0
    if not smoothing:
        return None
    if task != "classify":
        raise ConfigError(f"`training.label_smoothing` is for classification. Received: label_smoothing={smoothing!r}")
    return SparseSmoothedCrossentropy(label_smoothing=smoothing)


def _history_from_csv(path: Path) -> dict | None:
    """The whole history of a run, across resumes (CSVLogger appends)."""
    if not path.exists():
        return None
    lines = [line.split(",") for line in path.read_text().strip().splitlines()]
    if len(lines) < 2:
        return None
    header, rows = lines[0], [r for r in lines[1:] if r != lines[0]]
    return {name: [float(r[i]) for r in rows] for i, name in enumerate(header) if name != "epoch"}


def load_run(run_dir) -> tuple[keras.Model, dict]:
    """The trained model and config.json of a run folder, or a clear error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run folder not found: {run_dir}")
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise ConfigError(f"{run_dir} holds no trained model (model.keras is missing); run `seqapps train` first")
    config = json.loads((run_dir / "config.json").read_text())
    return keras.models.load_model(model_path), config

