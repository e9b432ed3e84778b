"""`seqapps evaluate` and `seqapps predict`: a trained run (or an export) on new files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.report import BadInputReport
from seqapps.errors import BadMediaError, ConfigError
from seqapps.runs import data as run_data
from seqapps.runs.train import evaluate_split, load_run


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
    """The run's Keras model: ``predict_clip`` with the run's window and hop."""

    def __init__(self, run_dir):
        self.model, config = load_run(run_dir)
        self.kind, self.data = config["kind"], config["settings"]["data"]
        self.window, self.hop = run_data.window_and_hop(config["preprocessing"])

    def __call__(self, raw):
        if len(raw) == 0:
            raise ValueError("too short for one window")
        clip, per_window = self.model.predict_clip(raw[np.newaxis], window=self.window, hop=self.hop,
                                                   return_windows=True)
        return clip.numpy()[0], per_window.numpy()[0]


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
