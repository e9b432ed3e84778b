"""seqapps: learning from audio and video sequences with an explicit-state recurrent layer.

>>> import seqapps
>>> layer = seqapps.layers.Recurrent(8)
>>> model = seqapps.SequenceClassifier(num_classes=2, input_shape=(None, 4), units=8)
"""

import os

# The Recurrent layer's explicit BPTT uses tf.custom_gradient: TensorFlow is the backend.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from seqapps import layers  # noqa: E402
from seqapps.errors import BadMediaError, ConfigError, SeqappsError  # noqa: E402
from seqapps.heads import ClassificationHead, RegressionHead  # noqa: E402
from seqapps.tasks import SequenceClassifier, SequenceRegressor  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "layers",
    "SequenceClassifier",
    "SequenceRegressor",
    "ClassificationHead",
    "RegressionHead",
    "BadMediaError",
    "ConfigError",
    "SeqappsError",
    "__version__",
]
