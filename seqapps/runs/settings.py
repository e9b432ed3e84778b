"""Run settings: defaults per data kind, merged with a user's JSON config file.

A config file holds any subset of the sections below, e.g.
    {"model": {"units": 64}, "training": {"epochs": 10}}

>>> s = resolve_settings("audio", overrides={"training": {"epochs": 3}})
>>> s["training"]["epochs"], s["data"]["sample_rate"]
(3, 16000)
"""

from __future__ import annotations

import copy
import json
import os

from seqapps.errors import ConfigError

# Everything FFmpeg (PyAV) or libsndfile reads; pipelines.decode picks the decoder by
# content, so a file's extension only decides whether a folder listing takes it.
AUDIO_EXTENSIONS = (
    ".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".mp4", ".opus", ".webm", ".mka",
    ".wma", ".amr", ".3gp", ".aif", ".aiff", ".caf", ".au", ".mov", ".mkv",
)
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm", ".3gp", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".ogv")

# Defaults chosen by measurement (README, "Defaults"): strong out of the box on the
# synthetic demo sets and the real recordings in ../shared/data.
DEFAULTS = {
    "audio": {
        "data": {
            "sample_rate": 16000,
            "window_seconds": 1.0,
            "hop_seconds": 0.5,
            "n_fft": 512,
            "hop_length": 160,
            "n_mels": 40,
            # Speech frontend (seqapps.layers.speech_frontend). Per-utterance CMVN by
            # measurement on held-out voices (README, "Will it work on new speakers?"):
            # it removes most of a microphone's and a voice's average spectrum.
            "features": "logmel",
            "n_mfcc": 13,
            "fmin": 0.0,
            "fmax": None,
            "normalization": "utterance",
            "deltas": 0,
            "delta_width": 9,
            "placement": "none",
        },
        # Training-only waveform augmentation (seqapps.layers.augmentation): identity at
        # inference and in exports; applied in the graph on the cached waveforms.
        "augmentation": {
            "noise_dir": None,
            "noise_snr_db": [0.0, 20.0],
            "noise_probability": 0.8,
            "gain_db": 0.0,
            "time_shift_seconds": 0.0,
            "speed": None,
            "tempo": None,
        },
    },
    "video": {
        "data": {
            "fps": None,
            "size": [64, 64],
            "window_frames": 24,
            "hop_frames": 12,
            # Optical flow (direction whatever the contrast), difference-magnitude
            # statistics and signed differences (size, fade), by measurement on a suite
            # whose looks are random and independent of the class (benchmarks/video_suite.py:
            # the best mean, 0.930 against 0.731 for differences alone): with pixels the
            # model memorises appearance (README, "Will it work on new speakers?").
            "features": ["flow", "motion", "difference"],
            "pixel_size": [8, 8],
            "grayscale": True,
            "pixel_normalization": "standardize",
            # The frame reader (pipelines.video.BACKENDS): FFmpeg through PyAV (exact
            # timestamps, rotation, codecs OpenCV's build lacks) or OpenCV; measured side
            # by side in benchmarks/README.md, "Decoding".
            "video_backend": "pyav",
        },
    },
    "common": {
        "model": {
            "units": 128,
            "num_layers": 1,
            "activation": "tanh",
            "recurrent_initializer": "orthogonal",
            "pooling": "mean",
            "dropout": 0.1,
            "hidden_units": 0,
            "truncate_bptt": None,
            "normalize_preactivation": False,
            "spec_augment": None,
            "bidirectional": False,
            "merge_mode": "concat",
        },
        "training": {
            "epochs": 30,
            "batch_size": 32,
            "learning_rate": 0.002,
            "clipnorm": 1.0,
            "patience": 8,
            "seed": 0,
            "val_fraction": 0.15,
            "test_fraction": 0.15,
            "class_weight": None,
            "lr_schedule": None,
            "warmup_epochs": 0,
            "label_smoothing": 0.0,
        },
    },
}


# Changes to the common sections for one kind, chosen by measurement on held-out voices
# (README, "Will it work on new speakers?"; benchmarks/speaker_independence.py): relu with
# an identity W_s keeps what the recurrence saw early in a word, where tanh with an
# orthogonal W_s lost it on voices it had not heard; SpecAugment with 40 epochs (it needs
# the longer budget: at 20 epochs it gained only 0.01) put the plain recurrence ahead of
# keras GRU trained the same way, in 3 folds of 4 and by less than the spread.
KIND_CHANGES = {
    "audio": {"model": {"activation": "relu", "recurrent_initializer": "identity", "spec_augment": {}},
              "training": {"epochs": 40}},
    "video": {},
}


def _merge(base: dict, update: dict, where: str) -> dict:
    for key, value in update.items():
        if key not in base:
            raise ConfigError(f"unknown setting `{where}{key}`; known: {', '.join(sorted(base))}")
        # An empty dict default (model.spec_augment: {}) holds a layer's own arguments:
        # replaced whole, like None; the layer names a wrong one.
        if isinstance(base[key], dict) and base[key] and isinstance(value, dict):
            _merge(base[key], value, f"{where}{key}.")
        else:
            base[key] = value
    return base


def resolve_settings(kind: str, *, config_file: str | os.PathLike | None = None, overrides: dict | None = None) -> dict:
    """Defaults for `kind` ("audio" or "video"), then the config file, then overrides."""
    if kind not in ("audio", "video"):
        raise ConfigError(f"`kind` must be 'audio' or 'video'. Received: kind={kind!r}")
    settings = copy.deepcopy({**DEFAULTS["common"], **DEFAULTS[kind]})
    _merge(settings, copy.deepcopy(KIND_CHANGES[kind]), "")
    if config_file is not None:
        try:
            with open(config_file, encoding="utf-8") as f:
                loaded = json.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {config_file}") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"{config_file}: not valid JSON ({err})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file}: must hold a JSON object of sections")
        _merge(settings, loaded, "")
    if overrides:
        _merge(settings, overrides, "")
    _check_choices(kind, settings)
    return settings


# pipelines.video.BACKENDS, written out: this module is read before any heavy import
# (the command line checks settings first); a test keeps the two equal.
VIDEO_BACKENDS = ("pyav", "opencv")


def _check_choices(kind: str, settings: dict) -> None:
    """Settings with a fixed set of values, checked before any file is decoded."""
    if kind == "video":
        backend = settings["data"]["video_backend"]
        if backend not in VIDEO_BACKENDS:
            raise ConfigError(f"`data.video_backend` must be one of {', '.join(map(repr, VIDEO_BACKENDS))}. "
                              f"Received: video_backend={backend!r}")
