"""Keep TensorFlow's start-up log lines off the terminal of a command-line user.

TensorFlow's native libraries write "oneDNN custom operations are on", "Could not find
cuda drivers" and "failed call to cuInit" straight to file descriptor 2 while they load,
before absl reads TF_CPP_MIN_LOG_LEVEL; Python cannot filter them. So the CLI imports
TensorFlow (and lets it look for devices) with descriptor 2 pointed at a temporary file,
and replays that file only if the import fails. `seqapps --verbose` skips all this.

>>> import_tensorflow_quietly()   # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
import tempfile


def import_tensorflow_quietly() -> None:
    """Import tensorflow and keras with native stderr captured; replay it on failure."""
    # After start-up TF still logs at level E things a user cannot act on ("oneDNN
    # supports DT_BOOL only on platforms with AVX-512"); real failures raise in Python.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices()  # device discovery logs once, here
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    import absl.logging

    # absl's Python handler would otherwise print "W0000 ..." warnings raw.
    absl.logging.set_verbosity(absl.logging.ERROR)
