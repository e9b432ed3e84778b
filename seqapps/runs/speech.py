"""The audio frontend of a run from its settings: spectral features, deltas, CMVN,
placement and training-only augmentation, as one in-graph layer.

Settings (``data`` section): ``features`` ("logmel" | "mfcc"), ``n_mfcc``, ``n_mels``,
``fmin``, ``fmax`` (None: sample_rate / 2; above it is clamped with a warning),
``normalization`` ("none" | "utterance"), ``deltas`` (0 | 1 | 2), ``delta_width``,
``placement`` ("none" | "trim" | "centre"). ``augmentation`` section: ``noise_dir``,
``noise_snr_db`` [min, max], ``noise_probability``, ``gain_db``, ``time_shift_seconds``,
``speed`` ([min, max] factor or None), ``tempo`` ([min, max] factor of the feature
frames: tempo without pitch, or None).

>>> from seqapps.runs.settings import resolve_settings
>>> s = resolve_settings("audio", overrides={"data": {"features": "mfcc", "deltas": 2}})
>>> layer, shape = make_speech_frontend(s["data"], augmentation=s["augmentation"])
>>> type(layer).__name__, shape, layer.compute_output_shape((None, 16000))[-1]
('SpeechFrontend', (16000,), 39)
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from seqapps.errors import ConfigError, invalid_argument

BACKGROUND_NOISE = "_background_noise_"  # Speech Commands' folder of noise recordings


def _pair(name: str, value) -> tuple[float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or value[0] > value[1]):
        raise invalid_argument(name, value, "a pair [min, max] of numbers with min <= max")
    return float(value[0]), float(value[1])


def waveform_augmentations(augmentation: dict | None, *, sample_rate: int, noise=None) -> list:
    """The training-only waveform layers the `augmentation` settings ask for, in order:
    speed, time shift, gain, background noise (noise last: its level follows the speech)."""
    from seqapps.layers.augmentation import (
        BackgroundNoise,
        RandomGain,
        SpeedPerturbation,
        TimeShift,
    )

    if not augmentation:
        return []
    layers = []
    if augmentation.get("speed") is not None:
        low, high = _pair("augmentation.speed", augmentation["speed"])
        layers.append(SpeedPerturbation(min_factor=low, max_factor=high, name="speed"))
    if augmentation.get("time_shift_seconds"):
        layers.append(TimeShift(max_shift=int(round(augmentation["time_shift_seconds"] * sample_rate)),
                                name="time_shift"))
    if augmentation.get("gain_db"):
        layers.append(RandomGain(max_db=augmentation["gain_db"], name="gain"))
    if augmentation.get("noise_dir") is not None:
        if noise is None:
            raise ConfigError("`augmentation.noise_dir` is set but no noise was loaded (see load_noise)")
        low, high = _pair("augmentation.noise_snr_db", augmentation["noise_snr_db"])
        layers.append(BackgroundNoise(noise=noise, min_snr_db=low, max_snr_db=high,
                                      probability=augmentation["noise_probability"], name="background_noise"))
    return layers


def _band(data: dict) -> tuple[float, float | None]:
    nyquist = data["sample_rate"] / 2
    fmin, fmax = float(data.get("fmin") or 0.0), data.get("fmax")
    if fmax is not None and fmax > nyquist:
        warnings.warn(f"`data.fmax`={fmax} is above the Nyquist frequency of sample_rate={data['sample_rate']}; "
                      f"using fmax={nyquist} (mel bands above it would be empty)", stacklevel=3)
        fmax = nyquist
    if not 0 <= fmin < (fmax if fmax is not None else nyquist):
        raise invalid_argument("data.fmin", fmin, f"in [0, fmax) with fmax={fmax or nyquist}")
    return fmin, None if fmax is None else float(fmax)


def make_speech_frontend(data: dict, *, augmentation: dict | None = None, noise=None):
    """(frontend layer, raw input shape) for the `data` (and `augmentation`) settings.

    With every new setting at its default this is the plain ``LogMelSpectrogram``.
    """
    from seqapps.layers.audio_frontends import MFCC, LogMelSpectrogram
    from seqapps.layers.speech_frontend import SpeechFrontend

    features = data.get("features", "logmel")
    if features not in ("logmel", "mfcc"):
        raise invalid_argument("data.features", features, "'logmel' or 'mfcc'")
    fmin, fmax = _band(data)
    common = dict(sample_rate=data["sample_rate"], n_fft=data["n_fft"], hop_length=data["hop_length"],
                  n_mels=data["n_mels"], fmin=fmin, fmax=fmax)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Empty filters")  # the layer raises a clearer error
        spectral = MFCC(n_mfcc=data.get("n_mfcc", 13), **common) if features == "mfcc" else LogMelSpectrogram(**common)
    layers = waveform_augmentations(augmentation, sample_rate=data["sample_rate"], noise=noise)
    window = int(round(data["window_seconds"] * data["sample_rate"]))
    extras = dict(placement=data.get("placement", "none"), deltas=data.get("deltas", 0),
                  delta_width=data.get("delta_width", 9), normalization=data.get("normalization", "none"))
    tempo = None
    if augmentation and augmentation.get("tempo") is not None:
        from seqapps.layers.augmentation import TempoPerturbation

        low, high = _pair("augmentation.tempo", augmentation["tempo"])
        tempo = TempoPerturbation(min_factor=low, max_factor=high, name="tempo")
    plain = extras["placement"] == "none" and not extras["deltas"] and extras["normalization"] == "none"
    if features == "logmel" and not layers and plain and tempo is None:
        return spectral, (window,)
    return SpeechFrontend(spectral=spectral, augmentations=layers, tempo=tempo, name="speech_frontend",
                          **extras), (window,)


def noise_folder(augmentation: dict | None, data_dir=None) -> Path | None:
    """The folder of noise recordings: `noise_dir`, where "auto" is DATA_DIR/_background_noise_."""
    if not augmentation or augmentation.get("noise_dir") is None:
        return None
    folder = augmentation["noise_dir"]
    if folder == "auto":
        if data_dir is None:
            raise ConfigError('`augmentation.noise_dir`="auto" needs a DATA_DIR holding '
                              f"{BACKGROUND_NOISE}/ (give the folder's path instead)")
        folder = Path(data_dir) / BACKGROUND_NOISE
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"noise folder {folder} (augmentation.noise_dir) does not exist or is not a folder")
    return folder


def load_noise(folder: str | os.PathLike, *, sample_rate: int) -> np.ndarray:
    """Every audio file of `folder` decoded once at `sample_rate`, concatenated [samples]."""
    from pipelines.audio import load_audio
    from seqapps.runs.settings import AUDIO_EXTENSIONS

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS
                   and not p.name.startswith("."))
    clips = [load_audio(p, sample_rate=sample_rate) for p in files]
    clips = [c for c in clips if c.size and np.any(c)]
    if not clips:
        raise ConfigError(f"noise folder {folder} holds no non-silent audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return np.concatenate(clips).astype(np.float32)


def fit_band_to_files(settings: dict, source, *, sample: int = 50) -> float | None:
    """Set `data.fmax` to the files' Nyquist frequency when they are recorded below the
    model's rate (e.g. 8 kHz phone speech decoded at 16 kHz): the mel bands above it
    would hold only resampling residue. Only when `fmax` is unset; warns; returns the
    new fmax or None. Looks at up to `sample` files (headers only, read by content as
    decoding does: libsndfile or FFmpeg, whose messages are captured, never printed).
    """
    from pipelines.decode_stream import native_sample_rate

    data = settings["data"]
    if data.get("fmax") is not None or not source.examples:
        return None
    step = max(1, len(source.examples) // sample)
    rates = []
    for example in source.examples[::step][:sample]:
        try:
            rates.append(native_sample_rate(example.path))
        except Exception:  # noqa: BLE001 (a bad file: decoding reports it with its reason)
            continue
    if not rates or max(rates) >= data["sample_rate"]:
        return None
    fmax = max(rates) / 2
    warnings.warn(f"the audio files are recorded at {max(rates)} Hz, below data.sample_rate={data['sample_rate']}: "
                  f"using data.fmax={fmax} so that no mel band lies above their Nyquist frequency "
                  "(set data.fmax or data.sample_rate to choose)", stacklevel=2)
    data["fmax"] = fmax
    return fmax
