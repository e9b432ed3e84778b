"""Held-out metrics with scikit-learn, and the plots a run folder keeps.

>>> import numpy as np
>>> m = classification_metrics(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), ["a", "b"])
>>> round(m["accuracy"], 3), m["n"]
(0.667, 3)
"""

from __future__ import annotations

import os

import numpy as np
from sklearn import metrics as skm

from seqapps.atomic import atomic_path


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, macro F1, per-class report and confusion matrix (scikit-learn).

    Args:
        labels: [n] true class ids. probabilities: [n, num_classes].
    """
    labels = np.asarray(labels).astype(int)
    predicted = np.asarray(probabilities).argmax(-1)
    ids = list(range(len(class_names)))
    report = skm.classification_report(
        labels, predicted, labels=ids, target_names=class_names, output_dict=True, zero_division=0
    )
    return {
        "n": int(labels.size),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "macro_f1": float(skm.f1_score(labels, predicted, labels=ids, average="macro", zero_division=0)),
        "per_class": {name: report[name] for name in class_names},
        "confusion_matrix": skm.confusion_matrix(labels, predicted, labels=ids).tolist(),
        "class_names": list(class_names),
    }


def regression_metrics(targets: np.ndarray, predictions: np.ndarray) -> dict:
    """MAE, RMSE and R^2 over all targets (scikit-learn); per-target values too."""
    targets = np.asarray(targets, np.float64).reshape(len(targets), -1)
    predictions = np.asarray(predictions, np.float64).reshape(len(predictions), -1)
    return {
        "n": int(len(targets)),
        "mae": float(skm.mean_absolute_error(targets, predictions)),
        "rmse": float(np.sqrt(skm.mean_squared_error(targets, predictions))),
        "r2": float(skm.r2_score(targets, predictions)) if len(targets) > 1 else float("nan"),
        "per_target_mae": skm.mean_absolute_error(targets, predictions, multioutput="raw_values").tolist(),
    }


def plot_history(history: dict[str, list[float]], path: str | os.PathLike) -> None:
    """Training curves (every metric and its val_ twin) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in history if not k.startswith("val_") and k != "epoch"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        ax.plot(np.arange(1, len(history[name]) + 1), history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(np.arange(1, len(history[f"val_{name}"]) + 1), history[f"val_{name}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def plot_confusion_matrix(matrix, class_names: list[str], path: str | os.PathLike) -> None:
    """A confusion matrix (rows: true class, columns: predicted) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    size = 1.0 + 0.6 * len(class_names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
