"""Training-only waveform augmentation: identity at inference, and in training it does what
it says, checked against NumPy references (np.roll, resampling by index, SNR by power)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seqapps.errors import ConfigError
from seqapps.layers.augmentation import BackgroundNoise, RandomGain, SpeedPerturbation, TimeShift

RNG = np.random.default_rng(3)
NOISE = RNG.normal(size=3000).astype("float32") * np.linspace(0.2, 1.0, 3000).astype("float32")


def _all_layers():
    return [
        RandomGain(max_db=6.0, seed=1),
        TimeShift(max_shift=50, seed=1),
        TimeShift(max_shift=50, fill="roll", seed=1),
        SpeedPerturbation(min_factor=0.8, max_factor=1.2, seed=1),
        BackgroundNoise(noise=NOISE, min_snr_db=0.0, max_snr_db=10.0, probability=1.0, seed=1),
    ]


@pytest.mark.parametrize("layer", _all_layers(), ids=lambda layer: type(layer).__name__)
def test_identity_at_inference_and_changes_in_training(layer):
    x = RNG.normal(size=(4, 800)).astype("float32")
    for training in (None, False):
        np.testing.assert_array_equal(np.asarray(layer(x, training=training)), x)
    assert not np.allclose(np.asarray(layer(x, training=True)), x)


@pytest.mark.parametrize("layer", _all_layers(), ids=lambda layer: type(layer).__name__)
def test_config_round_trip_keeps_arguments_but_not_the_noise(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert "noise" not in layer.get_config()


def test_gain_is_within_the_range_in_db():
    x = np.ones((256, 10), "float32")
    y = np.asarray(RandomGain(max_db=6.0, seed=2)(x, training=True))
    gain_db = 20 * np.log10(y[:, 0])
    np.testing.assert_allclose(y, y[:, :1] * np.ones_like(y))  # one gain per example
    assert gain_db.min() >= -6.0 - 1e-4 and gain_db.max() <= 6.0 + 1e-4
    assert gain_db.min() < -4.0 and gain_db.max() > 4.0  # the whole range is used


@pytest.mark.parametrize("fill", ["zeros", "roll"])
def test_shift_equals_a_numpy_roll_reference(fill):
    x = RNG.normal(size=(64, 40)).astype("float32")
    y = np.asarray(TimeShift(max_shift=5, fill=fill, seed=4)(x, training=True))
    shifts = []
    for row, out in zip(x, y, strict=True):
        matches = []
        for k in range(-5, 6):
            reference = np.roll(row, k)
            if fill == "zeros":  # what wrapped round is silence instead
                reference[:k] = 0 if k > 0 else reference[:k]
                if k < 0:
                    reference[k:] = 0
            if np.array_equal(out, reference):
                matches.append(k)
        assert len(matches) == 1
        shifts.append(matches[0])
    assert min(shifts) == -5 and max(shifts) == 5


def test_speed_changes_pitch_and_duration_by_the_factor():
    rate, factor = 8000, 1.25
    t = np.arange(rate) / rate
    burst = np.where(t < 0.5, np.sin(2 * np.pi * 400 * t), 0.0).astype("float32")[None]
    layer = SpeedPerturbation(min_factor=factor, max_factor=factor)
    out = np.asarray(layer(burst, training=True))[0]
    # duration: the 0.5 s burst now lasts 0.5 / factor s
    last = np.flatnonzero(np.abs(out) > 1e-3)[-1]
    assert abs(last / rate - 0.5 / factor) < 2 / rate
    # pitch: the spectral peak moves from 400 Hz to 400 * factor Hz
    voiced = out[: int(0.4 * rate / factor * factor)]
    spectrum = np.abs(np.fft.rfft(voiced * np.hanning(voiced.size), n=8 * rate))
    peak = np.argmax(spectrum) * rate / (8 * rate)
    assert abs(peak - 400 * factor) < 2.0
    # sample values: linear interpolation of x at t * factor
    reference = np.interp(np.arange(rate) * factor, np.arange(rate), burst[0])
    np.testing.assert_allclose(out[: int(rate / factor) - 1], reference[: int(rate / factor) - 1], atol=1e-5)


def test_background_noise_snr_is_in_the_requested_range():
    x = RNG.normal(size=(128, 2000)).astype("float32") * RNG.uniform(0.1, 2.0, size=(128, 1)).astype("float32")
    layer = BackgroundNoise(noise=NOISE, min_snr_db=5.0, max_snr_db=15.0, probability=1.0, seed=7)
    added = np.asarray(layer(x, training=True)) - x
    snr = 10 * np.log10(np.mean(x**2, axis=1) / np.mean(added**2, axis=1))
    assert snr.min() >= 5.0 - 0.05 and snr.max() <= 15.0 + 0.05
    assert snr.max() - snr.min() > 5.0
    # the added signal is a segment of the recorded noise (wrapping round), scaled
    row = added[0] / np.linalg.norm(added[0])
    tiled = np.concatenate([NOISE, NOISE])
    best = max(abs(float(np.dot(row, tiled[s:s + 2000]) / np.linalg.norm(tiled[s:s + 2000])))
               for s in range(NOISE.size))
    assert best > 0.9999


def test_background_noise_probability_and_mask():
    x = np.ones((400, 100), "float32")
    mask = np.ones((400, 100), bool)
    mask[:, 60:] = False
    layer = BackgroundNoise(noise=NOISE, min_snr_db=10.0, max_snr_db=10.0, probability=0.5, seed=0)
    out = np.asarray(layer(x * mask, mask=mask, training=True))
    noisy = np.any(np.abs(out[:, :60] - 1.0) > 1e-6, axis=1)
    assert 0.4 < noisy.mean() < 0.6
    assert np.all(out[:, 60:] == 0)  # padding stays silent


def test_bad_arguments_name_the_argument():
    with pytest.raises(ConfigError, match="`min_factor`"):
        SpeedPerturbation(min_factor=1.2, max_factor=1.1)
    with pytest.raises(ConfigError, match="`noise`"):
        BackgroundNoise(noise=np.zeros(10))
    with pytest.raises(ConfigError, match="`fill`"):
        TimeShift(fill="wrap")


def test_loaded_background_noise_is_the_identity_until_given_noise():
    layer = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(
        BackgroundNoise(noise=NOISE, probability=1.0)))
    x = np.ones((2, 50), "float32")
    np.testing.assert_array_equal(np.asarray(layer(x, training=True)), x)


def test_tempo_keeps_each_frame_spectrum_and_divides_the_duration():
    from seqapps.layers.augmentation import TempoPerturbation

    frames, bands, factor = 60, 8, 1.5
    x = np.zeros((2, frames, bands), "float32")
    x[:, 12:42, 3] = np.linspace(1.0, 2.0, 30)  # one band (one pitch) for 30 frames
    mask = np.ones((2, frames), bool)
    mask[1, 50:] = False
    layer = TempoPerturbation(min_factor=factor, max_factor=factor)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)  # inference: identity
    out, out_mask = layer.stretch(x, mask, training=True)
    out, out_mask = np.asarray(out), np.asarray(out_mask)
    active = np.flatnonzero(out[0].max(axis=1) > 0)
    assert set(np.flatnonzero(out[0].max(axis=0) > 0)) == {3}  # same band: same pitch
    assert abs(active.size - 30 / factor) <= 1.5  # 1.5 times faster
    for band in range(bands):  # linear interpolation of each band at t * factor
        reference = np.interp(np.arange(frames) * factor, np.arange(frames), x[0, :, band])
        reference[np.arange(frames) * factor > frames - 1] = 0.0
        np.testing.assert_allclose(out[0, :, band], reference, atol=1e-6)
    assert out_mask[0].sum() == int((frames - 1) / factor) + 1
    assert out_mask[1].sum() == int(49 / factor) + 1  # the valid part of a padded clip
