"""The project's small error hierarchy (one module, as librosa.util.exceptions).

Every message names the argument or file and the value received, e.g.
"`hop` must be a positive integer. Received: hop=0".

>>> from seqapps.errors import BadMediaError
>>> err = BadMediaError("clips/a.wav", "no audio samples")
>>> str(err)
'clips/a.wav: no audio samples'
"""

from __future__ import annotations

import os


class SeqappsError(Exception):
    """Base class of every error seqapps raises on purpose."""


class ConfigError(SeqappsError, ValueError):
    """A bad argument, option or configuration value (a user's mistake)."""


class BadMediaError(SeqappsError, ValueError):
    """A media or manifest file that cannot be used; names the file.

    Attributes:
        path: the offending file.
        reason: a short reason, also used in bad-input reports.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep picklable across multiprocessing
        return (type(self), (self.path, self.reason))


def invalid_argument(name: str, value, requirement: str) -> ConfigError:
    """Build the standard message: "`name` must be REQUIREMENT. Received: name=VALUE".

    >>> str(invalid_argument("units", 0, "a positive integer"))
    '`units` must be a positive integer. Received: units=0'
    """
    return ConfigError(f"`{name}` must be {requirement}. Received: {name}={value!r}")
