"""`seqapps export`: a trained run folder published as BASE_DIR/NAME/VERSION for TF Serving."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras

import seqapps.tasks  # noqa: F401  (registers the classes model.keras names)
from seqapps.errors import ConfigError
from seqapps.export import export_model


def export_run(
    run_dir: str | os.PathLike,
    *,
    base_dir: str | os.PathLike = "saved_models",
    name: str,
    version: int | None = None,
    warmup_examples: int = 3,
) -> Path:
    """Export the model of a `seqapps train` run folder (model.keras, config.json,
    labels.json, metrics.json) to BASE_DIR/NAME/VERSION.

    Example (shell): ``seqapps export runs/kws --name kws`` calls
    ``export_run("runs/kws", name="kws")`` and prints the returned folder.
    """
    run_dir = Path(run_dir)
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise ConfigError(f"{run_dir}: no model.keras (is this a `seqapps train` run folder?)")
    config = _read_json(run_dir / "config.json", required=True)
    if not isinstance(config, dict):
        raise ConfigError(f"{run_dir / 'config.json'}: expected a JSON object")
    model = keras.models.load_model(model_path, compile=False)
    labels = _read_json(run_dir / "labels.json", required=False)
    known = model.describe()["labels"]
    if labels is not None and known is not None:
        if len(labels) != len(known):
            raise ConfigError(f"{run_dir / 'labels.json'}: {len(labels)} labels for a model of "
                              f"{len(known)} classes")
        model.class_names = [str(label) for label in labels]
    preprocessing = dict(config.get("preprocessing") or {})
    preprocessing.setdefault("kind", config.get("kind", "features"))
    card = {
        "run": str(run_dir.resolve()),
        "data": config.get("data"),
        "training_config": {key: value for key, value in config.items() if key != "preprocessing"},
        "metrics": _read_json(run_dir / "metrics.json", required=False),
    }
    return export_model(model, base_dir=base_dir, name=name, preprocessing=preprocessing,
                        version=version, model_card=card, warmup_examples=warmup_examples)


def _read_json(path: Path, *, required: bool):
    if not path.is_file():
        if required:
            raise ConfigError(f"{path} is missing")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from err


