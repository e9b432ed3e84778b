"""`seqapps diagnose`: gradients through time of a trained run or an untrained model.

For a run, the batch comes from --data (a folder) or the run's own validation split.
For --config FILE (settings as for `seqapps train`, plus "kind" and "num_classes"),
an untrained classifier is built; without --data its batch is random input.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipelines import sources
from pipelines.report import BadInputReport
from seqapps.errors import ConfigError
from seqapps.runs import data as run_data
from seqapps.runs.settings import resolve_settings


def _first_batch(dataset):
    for inputs, targets, *_ in dataset:
        inputs.pop("clip_index", None)
        return inputs, targets
    raise ConfigError("no usable examples for the diagnosis batch (see the bad-input report)")


def _random_batch(model, *, batch: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = [d if d is not None else 48 for d in model.raw_input_shape]
    if model.frontend is not None and len(shape) == 4:  # video frames
        raw = rng.integers(0, 256, (batch, *shape), dtype=np.uint8)
    else:
        raw = rng.standard_normal((batch, *shape)).astype("float32") * 0.1
    return {"inputs": raw}, rng.integers(0, model.num_classes, batch)


def diagnose_run(run_dir=None, *, config_file=None, data_dir=None, out_dir="diagnose_out",
                 batch_size: int = 32) -> dict:
    """Write gradient_report.json and gradient_norms.png; return the per-layer summaries."""
    from seqapps.diagnostics import diagnose
    from seqapps.runs.train import build_model, load_run

    if (run_dir is None) == (config_file is None):
        raise ConfigError("give exactly one of RUN or --config FILE")
    report = BadInputReport()
    if run_dir is not None:
        model, config = load_run(run_dir)
        kind, settings = config["kind"], config["settings"]
        if data_dir is not None:
            source = run_data.load_source(kind, data_dir=data_dir, task=config["task"], report=report)
        else:
            source = sources.read_split(Path(run_dir) / "split.csv", report=report)
            source = source.subset([i for i, e in enumerate(source.examples) if e.split == "val"])
        if config["task"] == "classify":
            source = run_data.with_model_classes(source, model.class_names)
        cache = Path(run_dir) / "cache"
    else:
        raw = json.loads(Path(config_file).read_text()) if Path(config_file).is_file() else None
        if raw is None:
            raise ConfigError(f"config file not found: {config_file}")
        kind, num_classes = raw.pop("kind", "audio"), raw.pop("num_classes", 2)
        settings = resolve_settings(kind, overrides=raw)
        source = None
        if data_dir is not None:
            source = run_data.load_source(kind, data_dir=data_dir, report=report)
        names = source.class_names if source else [f"class_{i}" for i in range(num_classes)]
        model = build_model(kind, "classify", settings, sources.DataSource([], names, None, "classify"))
        model.compile()
        cache = Path(out_dir) / "cache"
    if source is None:
        x, y = _random_batch(model)
    else:
        dataset = run_data.make_dataset(kind, source, None, data=settings["data"], frontend=model.frontend,
                                        batch_size=batch_size, shuffle=True, seed=0, cache_dir=cache,
                                        report=report)
        x, y = _first_batch(dataset)
    result = diagnose(model, x, y, out_dir=out_dir)
    print(result["text"])
    return {"json": str(result["json"]), "png": str(result["png"]),
            "layers": {layer["name"]: layer["summary"] for layer in result["report"]["layers"]}}
