"""`seqapps train ... --folds K`: group cross-validation, what a new speaker will get.

The groups (speakers, from a manifest's ``group`` column or ``--group-pattern``) are
dealt into K folds (``pipelines.groups.group_folds``: StratifiedGroupKFold, GroupKFold for
regression). Fold k trains on the other folds (val held out of them by whole groups)
and is tested on fold k's groups, which it never saw. Written:

  RUN/cv/fold_k/        a full run folder (model, metrics.json, confusion_matrix.json/.png)
  RUN/cv/summary.json   mean and standard deviation over folds of accuracy and macro F1
                        (MAE, RMSE, R^2 for regression), the per-fold numbers, the score
                        of every group and the hardest groups
  RUN/cv/confusion_matrix.png  the folds' test confusion matrices summed
  RUN/bad_inputs.json   the run's one bad-input report (every fold decodes the same files)

The bad-input summary is printed once per run, on stderr: when the first fold has decoded
its splits (together they hold every file), or at the end when every fold was resumed.
A fold whose metrics.json exists is not trained again (a killed run resumes).

>>> summarise_folds([{"accuracy": 0.5, "macro_f1": 0.4}, {"accuracy": 0.7, "macro_f1": 0.6}],
...                 ("accuracy", "macro_f1"))["accuracy"]
{'mean': 0.6, 'std': 0.1, 'per_fold': [0.5, 0.7]}
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from seqapps.atomic import write_json
from seqapps.errors import ConfigError

CLASSIFICATION_KEYS = ("accuracy", "macro_f1")
REGRESSION_KEYS = ("mae", "rmse", "r2")


def summarise_folds(fold_metrics: list[dict], keys) -> dict:
    """{key: {"mean", "std", "per_fold"}} over folds (population std, as numpy)."""
    summary = {}
    for key in keys:
        values = [float(m[key]) for m in fold_metrics]
        summary[key] = {"mean": round(float(np.mean(values)), 6), "std": round(float(np.std(values)), 6),
                        "per_fold": values}
    return summary


def _group_scores(model, kind, source, indices, *, settings, cache_dir, report) -> dict:
    """{group: {"n", "accuracy" | "mae"}} of `model` on examples `indices`."""
    from seqapps.runs import data as run_data

    clips, predictions, targets = run_data.clip_predictions(
        model, kind, source, indices, data=settings["data"], cache_dir=cache_dir, report=report)
    scores: dict[str, list] = {}
    for clip, prediction, target in zip(clips, predictions, targets, strict=True):
        example = source.examples[int(clip)]
        group = example.group if example.group is not None else example.path
        if source.task == "classify":
            scores.setdefault(group, []).append(float(np.argmax(prediction) == int(target)))
        else:
            scores.setdefault(group, []).append(float(np.mean(np.abs(np.asarray(prediction) - target))))
    name = "accuracy" if source.task == "classify" else "mae"
    return {g: {"n": len(v), name: float(np.mean(v))} for g, v in sorted(scores.items())}


def cross_validate(kind: str, source, *, run_dir, folds: int, settings: dict, strategy, report,
                   verbose="auto", noise=None) -> dict:
    """Train `folds` group folds of `source` under RUN/cv/; returns the summary dict."""
    import keras

    from pipelines.groups import group_folds
    from pipelines.report import BadInputReport
    from seqapps.evaluation import plot_confusion_matrix
    from seqapps.runs.train import print_report, train_on_source

    if any(e.split is not None for e in source.examples):
        raise ConfigError("--folds makes its own group folds: leave out the split column and the separate test set")
    if not any(e.group is not None for e in source.examples):
        raise ConfigError("--folds needs groups (speakers): a manifest `group` column or --group-pattern")
    cv_dir = Path(run_dir) / "cv"
    held_out = group_folds(source, folds=folds, seed=settings["training"]["seed"])
    keys = CLASSIFICATION_KEYS if source.task == "classify" else REGRESSION_KEYS
    per_fold, groups, confusion = [], {}, None
    printed = False
    for k, test_indices in enumerate(held_out):
        fold_dir = cv_dir / f"fold_{k}"
        test_set = set(test_indices.tolist())
        fold_source = replace(source, examples=[replace(e, split="test" if i in test_set else "train")
                                                for i, e in enumerate(source.examples)])
        metrics_path = fold_dir / "metrics.json"
        if metrics_path.exists() and (fold_dir / "group_scores.json").exists():
            metrics = json.loads(metrics_path.read_text())
            fold_groups = json.loads((fold_dir / "group_scores.json").read_text())
            if (fold_dir / "bad_inputs.json").exists():  # a resumed fold's files, reported again
                report.extend(BadInputReport.load(fold_dir / "bad_inputs.json"))
        else:
            # One fold's train, val and test splits hold every file: its decoding tells
            # the fate of all of them, so only the first fold trained prints the summary.
            metrics = train_on_source(kind, fold_source, run_dir=fold_dir, settings=settings, strategy=strategy,
                                      report=report, verbose=verbose, noise=noise, print_summary=not printed)
            printed = True
            model = keras.models.load_model(fold_dir / "model.keras")
            fold_groups = _group_scores(model, kind, fold_source, sorted(test_set), settings=settings,
                                        cache_dir=fold_dir / "cache", report=report)
            write_json(fold_dir / "group_scores.json", fold_groups)
        test = metrics["test"]
        row = {"fold": k, "n": test["n"], "groups": sorted(fold_groups), **{key: test[key] for key in keys}}
        per_fold.append(row)
        for group, score in fold_groups.items():
            groups[group] = {"fold": k, **score}
        if source.task == "classify":
            write_json(fold_dir / "confusion_matrix.json",
                       {"labels": source.class_names, "matrix": test["confusion_matrix"]})
            matrix = np.asarray(test["confusion_matrix"])
            confusion = matrix if confusion is None else confusion + matrix
    score = "accuracy" if source.task == "classify" else "mae"
    ranked = sorted(groups, key=lambda g: groups[g][score], reverse=score == "mae")
    summary = {
        "folds": folds,
        "task": source.task,
        **summarise_folds(per_fold, keys),
        "per_fold": per_fold,
        "groups": groups,
        "hardest_groups": [{"group": g, **groups[g]} for g in ranked[:5]],
    }
    if confusion is not None:
        summary["confusion_matrix"] = confusion.tolist()
        plot_confusion_matrix(summary["confusion_matrix"], source.class_names, cv_dir / "confusion_matrix.png")
    write_json(cv_dir / "summary.json", summary)
    report.save(Path(run_dir) / "bad_inputs.json")
    if not printed:  # every fold was resumed: the summary is still due once
        print_report(report)
    return summary


def cross_validate_run(kind: str, *, run_dir, folds: int, data_dir=None, manifest=None, task="classify",
                       epochs=None, config_file=None, strict=False, target_columns=None, group_pattern=None,
                       verbose="auto", strategy="default") -> dict:
    """`seqapps train ... --folds K`: settings and source as `train_run`, then `cross_validate`."""
    from pipelines.report import BadInputReport
    from seqapps import distribute
    from seqapps.runs import data as run_data
    from seqapps.runs.settings import resolve_settings
    from seqapps.runs.train import run_noise

    if isinstance(strategy, str):
        strategy = distribute.make_strategy(strategy)
    overrides = {"training": {"epochs": epochs}} if epochs is not None else None
    settings = resolve_settings(kind, config_file=config_file, overrides=overrides)
    report = BadInputReport(strict=strict)
    source = run_data.load_training_source(kind, data_dir=data_dir, manifest=manifest, task=task,
                                           target_columns=target_columns, report=report, group_pattern=group_pattern)
    if kind == "audio":
        from seqapps.runs.speech import fit_band_to_files

        fit_band_to_files(settings, source)
    return cross_validate(kind, source, run_dir=run_dir, folds=folds, settings=settings, strategy=strategy,
                          report=report, verbose=verbose, noise=run_noise(kind, settings, data_dir))
