"""The application layer: a run folder in and out.

Build, train, evaluate, predict with and load a run; the command line (`seqapps.cli`),
the demo and the benchmarks call these functions, and so can a user's own script:

>>> from seqapps import runs
>>> metrics = runs.train_run("audio", run_dir="runs/words", data_dir="data/words")  # doctest: +SKIP
>>> model, config = runs.load_run("runs/words")                                    # doctest: +SKIP

Modules: `settings` (defaults and config files, no TensorFlow), `data` (sources,
frontends, datasets of a run), `train`, `evaluate` (evaluate and predict), `export`,
`diagnose`, `demo`. Names are imported on first use so that `seqapps.runs.settings` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "train_run": "train",
    "build_model": "train",
    "load_run": "train",
    "evaluate_split": "train",
    "evaluate_run": "evaluate",
    "predict_files": "evaluate",
    "make_predictor": "evaluate",
    "export_run": "export",
    "diagnose_run": "diagnose",
    "run_demo": "demo",
    "resolve_settings": "settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"seqapps.runs.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'seqapps.runs' has no attribute {name!r}")
