"""seqapps: learning from audio and video sequences with an explicit-state recurrent layer.

>>> import seqapps
>>> layer = seqapps.layers.Recurrent(8)
>>> model = seqapps.SequenceClassifier(num_classes=2, input_shape=(None, 4), units=8)

The names below are imported on first use (PEP 562), so that `import seqapps.cli` and
`seqapps --help` do not import TensorFlow.
"""

import importlib
import os

# The Recurrent layer's explicit BPTT uses tf.custom_gradient: TensorFlow is the backend.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from seqapps.errors import BadMediaError, ConfigError, SeqappsError  # noqa: E402  (no heavy imports)

_LAZY = {
    "layers": ("seqapps.layers", None),
    "runs": ("seqapps.runs", None),
    "SequenceClassifier": ("seqapps.tasks", "SequenceClassifier"),
    "SequenceRegressor": ("seqapps.tasks", "SequenceRegressor"),
    "ClassificationHead": ("seqapps.heads", "ClassificationHead"),
    "RegressionHead": ("seqapps.heads", "RegressionHead"),
}

__version__ = "0.1.0"
__all__ = [
    "layers",
    "runs",
    "SequenceClassifier",
    "SequenceRegressor",
    "ClassificationHead",
    "RegressionHead",
    "BadMediaError",
    "ConfigError",
    "SeqappsError",
    "__version__",
]


def __getattr__(name: str):
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        module = importlib.import_module(module_name)
        return module if attribute is None else getattr(module, attribute)
    raise AttributeError(f"module 'seqapps' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
