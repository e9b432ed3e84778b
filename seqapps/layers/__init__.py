"""Keras layers of seqapps: the Recurrent layer, its initializers and the frontends.

Importing this package registers every layer for .keras loading under "seqapps".
"""

from seqapps.layers.audio_frontends import (
    MFCC,
    LogMelSpectrogram,
    SpecAugment,
    UtteranceNormalization,
    WaveAugment,
)
from seqapps.layers.augmentation import (
    BackgroundNoise,
    RandomGain,
    SpeedPerturbation,
    TempoPerturbation,
    TimeShift,
)
from seqapps.layers.deltas import Deltas
from seqapps.layers.initializers import SpectralRadius
from seqapps.layers.normalization import FeatureNormalization
from seqapps.layers.recurrent import Recurrent
from seqapps.layers.speech_frontend import CentreSpeech, SpeechFrontend
from seqapps.layers.trim_silence import TrimSilence
from seqapps.layers.video_flow import FrameFlow
from seqapps.layers.video_frontends import (
    ColorHistogram,
    FrameDifference,
    FrameEmbedder,
    FrameFeatures,
    FrameMotion,
    FramePixels,
    image_backbone,
    small_cnn,
)

__all__ = [
    "Recurrent",
    "SpectralRadius",
    "FeatureNormalization",
    "LogMelSpectrogram",
    "MFCC",
    "TrimSilence",
    "UtteranceNormalization",
    "SpecAugment",
    "WaveAugment",
    "RandomGain",
    "TimeShift",
    "SpeedPerturbation",
    "BackgroundNoise",
    "TempoPerturbation",
    "Deltas",
    "CentreSpeech",
    "SpeechFrontend",
    "FramePixels",
    "ColorHistogram",
    "FrameDifference",
    "FrameMotion",
    "FrameFlow",
    "FrameEmbedder",
    "FrameFeatures",
    "image_backbone",
    "small_cnn",
]
