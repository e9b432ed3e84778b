"""Keras layers of seqapps: the Recurrent layer, its initializers and the frontends."""

from seqapps.layers.initializers import SpectralRadius
from seqapps.layers.recurrent import Recurrent

__all__ = ["Recurrent", "SpectralRadius"]
