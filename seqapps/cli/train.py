"""`seqapps train`: a folder or manifest in, a trained and evaluated run folder out.

RUN/ receives: model.keras, config.json, labels.json (classification), split.csv,
bad_inputs.json, metrics.json, history.json/.csv, curves.png, confusion_matrix.png,
best.keras, logs/ (TensorBoard), cache/ and backup/ (while a run is unfinished).
Running the same command again after the process was killed resumes from the last
finished epoch, with the same split.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras

from pipelines import sources
from pipelines.report import BadInputReport
from seqapps.atomic import atomic_path, write_json
from seqapps.cli import data as cli_data
from seqapps.cli.settings import resolve_settings
from seqapps.errors import ConfigError
from seqapps.evaluation import (
    classification_metrics,
    plot_confusion_matrix,
    plot_history,
    regression_metrics,
)
from seqapps.tasks import SequenceClassifier, SequenceRegressor
from seqapps.training import balanced_class_weight, fit


def _load_or_make_split(run_dir: Path, source, training: dict):
    """Reuse RUN/split.csv when resuming, so a resumed run sees the same data."""
    path = run_dir / "split.csv"
    if path.exists():
        saved = sources.read_split(path)
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
    sources.write_split(path, source, split)
    return split


def build_model(kind: str, task: str, settings: dict, source):
    frontend, input_shape = cli_data.make_frontend(kind, settings["data"])
    common = {"input_shape": input_shape, "frontend": frontend, **settings["model"]}
    if task == "classify":
        return SequenceClassifier(num_classes=len(source.class_names), class_names=source.class_names, **common)
    return SequenceRegressor(num_targets=len(source.target_names), target_names=source.target_names, **common)


def evaluate_split(model, kind, source, indices, *, settings, run_dir, report) -> dict:
    """Clip-level metrics of `model` on examples `indices` of `source`."""
    dataset = cli_data.make_dataset(
        kind, source, indices, data=settings["data"], frontend=model.frontend,
        batch_size=settings["training"]["batch_size"], shuffle=False, seed=0,
        cache_dir=run_dir / "cache", report=report, with_clip_index=True,
    )
    _, predictions, targets = cli_data.clip_predictions(model, dataset)
    if source.task == "classify":
        return classification_metrics(targets, predictions, source.class_names)
    return regression_metrics(targets, predictions)


def train_run(kind: str, *, run_dir, data_dir=None, manifest=None, task="classify", epochs=None,
              config_file=None, strict=False, target_columns=None, verbose="auto") -> dict:
    """Train, evaluate and write a run folder; returns the metrics dict."""
    run_dir = Path(run_dir)
    overrides = {"training": {"epochs": epochs}} if epochs is not None else None
    settings = resolve_settings(kind, config_file=config_file, overrides=overrides)
    training = settings["training"]
    keras.utils.set_random_seed(training["seed"])

    report = BadInputReport(strict=strict)
    source = cli_data.load_source(kind, data_dir=data_dir, manifest=manifest, task=task,
                                  target_columns=target_columns, report=report)
    run_dir.mkdir(parents=True, exist_ok=True)
    split = _load_or_make_split(run_dir, source, training)
    if not split["train"] or not split["val"]:
        raise ConfigError(f"too few examples to split into train and validation: {len(source.examples)} usable")

    model = build_model(kind, source.task, settings, source)
    model.compile(optimizer=keras.optimizers.Adam(training["learning_rate"], clipnorm=training["clipnorm"]))
    cache = run_dir / "cache"
    make = dict(data=settings["data"], frontend=model.frontend, batch_size=training["batch_size"],
                cache_dir=cache, report=report)
    train_ds = cli_data.make_dataset(kind, source, split["train"], shuffle=True, seed=training["seed"], **make)
    val_ds = cli_data.make_dataset(kind, source, split["val"], shuffle=False, seed=0, **make)
    model.adapt(train_ds, steps=50)

    class_weight = None
    if training["class_weight"] == "balanced" and source.task == "classify":
        class_weight = balanced_class_weight(source.labels_as_ids()[split["train"]], len(source.class_names))
    config = {"kind": kind, "task": source.task, "settings": settings,
              "preprocessing": cli_data.preprocessing_config(kind, settings["data"])}
    write_json(run_dir / "config.json", config)
    if source.task == "classify":
        write_json(run_dir / "labels.json", source.class_names)
    else:
        write_json(run_dir / "targets.json", source.target_names)

    history = fit(model, train_ds, val_ds, run_dir=run_dir, epochs=training["epochs"],
                  patience=training["patience"], class_weight=class_weight, verbose=verbose)
    with atomic_path(run_dir / "model.keras") as tmp:
        model.save(tmp)
    full_history = _history_from_csv(run_dir / "history.csv") or history.history
    write_json(run_dir / "history.json", full_history)
    plot_history(full_history, run_dir / "curves.png")

    metrics = {"val": evaluate_split(model, kind, source, split["val"], settings=settings,
                                     run_dir=run_dir, report=report)}
    if split["test"]:
        metrics["test"] = evaluate_split(model, kind, source, split["test"], settings=settings,
                                         run_dir=run_dir, report=report)
    metrics["data"] = {name: len(idx) for name, idx in split.items()}
    metrics["data"]["skipped_files"] = len(report.skipped)
    write_json(run_dir / "metrics.json", metrics)
    report.save(run_dir / "bad_inputs.json")
    if source.task == "classify":
        shown = metrics.get("test", metrics["val"])
        plot_confusion_matrix(shown["confusion_matrix"], source.class_names, run_dir / "confusion_matrix.png")
    if report.count:
        print(report.summary())
    return metrics


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
    import seqapps.layers.audio_frontends  # noqa: F401  (registers the frontends for loading)
    import seqapps.layers.video_frontends  # noqa: F401

    return keras.models.load_model(model_path), config

