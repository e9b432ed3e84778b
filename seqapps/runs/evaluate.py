"""`seqapps evaluate` and `seqapps predict`: a trained run (or an export) on new files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.report import BadInputReport
from seqapps.runs import data as run_data
from seqapps.runs.train import evaluate_split, load_run
from seqapps.errors import BadMediaError, ConfigError


def evaluate_run(run_dir, *, data_dir=None, manifest=None, strict=False) -> dict:
    """Clip-level metrics of a run's model on every file of a folder or manifest."""
    model, config = load_run(run_dir)
    kind, settings = config["kind"], config["settings"]
    report = BadInputReport(strict=strict)
    source = run_data.load_source(kind, data_dir=data_dir, manifest=manifest, task=config["task"],
                                  target_columns=getattr(model, "target_names", None) if manifest and config["task"] == "regress" else None,
                                  report=report)
    if config["task"] == "classify":
        source = run_data.with_model_classes(source, model.class_names)
    metrics = evaluate_split(model, kind, source, list(range(len(source.examples))), settings=settings,
                             run_dir=Path(run_dir) / "eval", report=report)
    metrics["skipped_files"] = report.skipped
    return metrics


class _RunPredictor:
    """Window a decoded file, run the Keras model, aggregate per clip."""

    def __init__(self, run_dir):
        self.model, config = load_run(run_dir)
        self.kind, self.data = config["kind"], config["settings"]["data"]
        pre = config["preprocessing"]
        self.length = pre["window_samples"] if self.kind == "audio" else pre["window_frames"]
        self.shift = pre["hop_samples"] if self.kind == "audio" else pre["hop_frames"]

    def __call__(self, raw):
        if self.kind == "video":
            # As in training: frame features over the whole clip (motion needs the frame
            # before each window), then windows of features.
            features = self.model.frontend(raw[np.newaxis], training=False).numpy()[0]
            windows, mask = run_data.window_raw(features, length=self.length, shift=self.shift)
            inputs = {"features": windows, "mask": mask}
        else:
            windows, mask = run_data.window_raw(raw, length=self.length, shift=self.shift)
            inputs = {"inputs": windows, "mask": mask}
        if len(windows) == 0:
            raise ValueError("too short for one window")
        per_window = self.model(inputs, training=False).numpy()
        return per_window.mean(0), per_window


class _SavedModelPredictor:
    """The exported serving_default signature (windowing and aggregation in the graph)."""

    def __init__(self, folder):
        from seqapps.export import load_exported

        self.exported = load_exported(folder)
        self.data = dict(self.exported.preprocessing)
        self.kind = self.data["kind"]
        self.labels = list(self.exported.labels or []) or None

    def __call__(self, raw):
        outputs = self.exported(raw[np.newaxis])
        values = outputs["probabilities"] if "probabilities" in outputs else outputs["predictions"]
        return np.asarray(values)[0], None


def make_predictor(model_path):
    """A predictor for a run folder (model.keras) or an exported SavedModel version folder."""
    path = Path(model_path)
    if (path / "saved_model.pb").is_file():
        return _SavedModelPredictor(path)
    if (path / "model.keras").is_file() or not path.exists():
        return _RunPredictor(path)
    versions = sorted((p for p in path.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    if versions and (versions[-1] / "saved_model.pb").is_file():
        return _SavedModelPredictor(versions[-1])
    raise ConfigError(
        f"{path} holds no trained model (model.keras is missing) and no SavedModel (saved_model.pb)"
    )


def predict_files(model_path, files, *, windows=False):
    """Yield one result dict per file: label and probability (or values), or an error."""
    predictor = make_predictor(model_path)
    class_names = getattr(getattr(predictor, "model", None), "class_names", None) or getattr(predictor, "labels", None)
    for file in files:
        try:
            raw = run_data.decode_file(predictor.kind, file, predictor.data)
            values, per_window = predictor(raw)
        except (BadMediaError, ValueError) as err:
            yield {"file": str(file), "error": str(err)}
            continue
        result = {"file": str(file)}
        if class_names:
            best = int(np.argmax(values))
            result.update(label=class_names[best], probability=float(values[best]),
                          probabilities={c: float(v) for c, v in zip(class_names, values, strict=True)})
        else:
            result["values"] = [float(v) for v in np.ravel(values)]
        if windows and per_window is not None:
            result["windows"] = np.round(per_window, 5).tolist()
        yield result
