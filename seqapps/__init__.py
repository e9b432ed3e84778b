"""seqapps: learning from audio and video sequences with an explicit-state recurrent layer.

>>> import seqapps
>>> layer = seqapps.layers.Recurrent(8)
"""

import os

# The Recurrent layer's explicit BPTT uses tf.custom_gradient: TensorFlow is the backend.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from seqapps import layers  # noqa: E402
from seqapps.errors import BadMediaError, ConfigError, SeqappsError  # noqa: E402

__version__ = "0.1.0"
__all__ = ["layers", "BadMediaError", "ConfigError", "SeqappsError", "__version__"]
