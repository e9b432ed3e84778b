"""Audio frontends against librosa (the reference), masks, augmentation, serialisation.

Tolerances (float32 graph vs librosa on float64 input): mel power/magnitude within
rtol 1e-4 (plus atol 1e-6 of the spectrogram's peak for near-empty bins, where relative
error is meaningless); dB within 1e-3 dB (observed ~6e-5 dB); MFCC within 1e-3 absolute
on coefficients of magnitude up to a few hundred (observed ~1.3e-4).
"""

from __future__ import annotations

import keras
import librosa
import numpy as np
import pytest
import tensorflow as tf

from seqapps.layers.audio_frontends import (
    MFCC,
    LogMelSpectrogram,
    SpecAugment,
    TrimSilence,
    UtteranceNormalization,
    WaveAugment,
)

SR = 16000
COMMON = dict(sample_rate=SR, n_fft=512, hop_length=160, n_mels=40)


def _signal(n=SR, seed=0, f0=440.0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    chirp = np.sin(2 * np.pi * (f0 + 1500 * t) * t)
    return (0.5 * chirp + 0.05 * rng.normal(size=n)).astype(np.float32)


def _librosa_mel(y, **kwargs):
    settings = {**COMMON, **kwargs}
    sr = settings.pop("sample_rate")
    return librosa.feature.melspectrogram(y=y.astype(np.float64), sr=sr, **settings)


SETTINGS = [
    {},  # Slaney scale, Slaney norm, centred, constant padding, power 2
    {"htk": True, "norm": None},
    {"htk": True, "norm": "slaney"},
    {"htk": False, "norm": None},
    {"center": False},
    {"pad_mode": "reflect"},
    {"power": 1.0},
    {"power": 1.0, "center": False, "htk": True},
    {"win_length": 400, "window": "hamming"},
    {"fmin": 50.0, "fmax": 7000.0, "n_mels": 64},
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "default")
def test_mel_matches_librosa(settings):
    y = _signal()
    layer = LogMelSpectrogram(**{**COMMON, **settings}, log=None)
    out = np.asarray(layer(y[None]))[0].T  # librosa is [n_mels, frames]
    ref = _librosa_mel(y, **settings)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-6 * ref.max())


@pytest.mark.parametrize("settings", [{}, {"htk": True, "norm": None, "center": False}, {"pad_mode": "reflect", "power": 1.0}])
def test_db_matches_librosa_power_to_db(settings):
    y = _signal(seed=1)
    layer = LogMelSpectrogram(**{**COMMON, **settings}, log="db", top_db=80.0, amin=1e-10)
    out = np.asarray(layer(y[None]))[0].T
    ref = librosa.power_to_db(_librosa_mel(y, **settings), ref=1.0, amin=1e-10, top_db=80.0)
    np.testing.assert_allclose(out, ref, atol=1e-3)


def test_top_db_is_per_utterance_and_batch_matches_single_clips():
    loud, quiet = _signal(seed=2), 1e-3 * _signal(seed=3, f0=200.0)
    layer = LogMelSpectrogram(**COMMON, top_db=40.0)
    out = np.asarray(layer(np.stack([loud, quiet])))
    for row, y in zip(out, (loud, quiet), strict=True):
        ref = librosa.power_to_db(_librosa_mel(y), ref=1.0, top_db=40.0)
        np.testing.assert_allclose(row.T, ref, atol=1e-3)


def test_natural_log_with_floor():
    y = _signal(seed=4)
    y[4000:8000] = 0.0  # exact silence exercises the floor
    out = np.asarray(LogMelSpectrogram(**COMMON, log="natural", log_floor=1e-5)(y[None]))[0].T
    ref = np.log(np.maximum(_librosa_mel(y), 1e-5))
    np.testing.assert_allclose(out, ref, atol=1e-4)
    assert out.min() == pytest.approx(np.log(1e-5), abs=1e-5)


@pytest.mark.parametrize("lifter", [0.0, 22.0])
@pytest.mark.parametrize("htk", [False, True])
def test_mfcc_matches_librosa(lifter, htk):
    y = _signal(seed=5)
    out = np.asarray(MFCC(**COMMON, n_mfcc=13, lifter=lifter, htk=htk)(y[None]))[0].T
    ref = librosa.feature.mfcc(
        y=y.astype(np.float64), sr=SR, n_fft=512, hop_length=160, n_mels=40, n_mfcc=13, lifter=lifter, htk=htk
    )
    assert out.shape == ref.shape == (13, 101)
    np.testing.assert_allclose(out, ref, atol=1e-3, rtol=1e-4)


def test_padded_batch_with_mask_matches_the_short_clip_alone():
    short, long = _signal(8000, seed=6), _signal(SR, seed=7)
    batch = np.zeros((2, SR), np.float32)
    batch[0, :8000] = short
    batch[0, 8000:] = 123.0  # garbage in the padding must not leak into valid frames
    batch[1] = long
    mask = np.zeros((2, SR), bool)
    mask[0, :8000] = True
    mask[1] = True
    layer = LogMelSpectrogram(**COMMON, log=None)
    out = np.asarray(layer(batch, mask=mask))
    ref_short = _librosa_mel(short)  # librosa pads with zeros too (pad_mode="constant")
    np.testing.assert_allclose(out[0, : ref_short.shape[1]].T, ref_short, rtol=1e-4, atol=1e-6 * ref_short.max())
    frame_mask = np.asarray(layer.compute_mask(batch, mask))
    centres = np.arange(out.shape[1]) * 160  # center=True: frame t is centred on sample t * hop
    np.testing.assert_array_equal(frame_mask[0], centres < 8000)
    assert frame_mask[1].all()
    assert layer.compute_mask(batch, None) is None


def test_frame_mask_centre_rule_without_centering_and_holes():
    layer = LogMelSpectrogram(**COMMON, center=False)
    mask = np.ones((1, 4000), bool)
    mask[0, 1000:1500] = False
    frame_mask = np.asarray(layer.compute_mask(np.zeros((1, 4000), np.float32), mask))[0]
    centres = np.arange(1 + (4000 - 512) // 160) * 160 + 256
    np.testing.assert_array_equal(frame_mask, mask[0, centres])


def test_mask_propagates_in_a_functional_model():
    wave = keras.Input((None,), dtype="float32")
    sample_mask = keras.Input((None,), dtype="bool")
    features = LogMelSpectrogram(**COMMON)(wave, mask=sample_mask)
    features = UtteranceNormalization()(features)
    pooled = keras.layers.GlobalAveragePooling1D()(features)  # mask-aware mean
    model = keras.Model([wave, sample_mask], pooled)
    y = _signal(seed=8)
    batch = np.stack([y, y])
    mask = np.ones_like(batch, bool)
    mask[1, 8000:] = False
    out = np.asarray(model([batch, mask]))
    # UtteranceNormalization makes every valid frame's features mean 0 (masked mean 0);
    # the second model checks that the pooling saw exactly the frame mask's frames.
    np.testing.assert_allclose(out, 0.0, atol=1e-4)
    logmel = LogMelSpectrogram(**COMMON)
    inner = keras.Model([wave, sample_mask], keras.layers.GlobalAveragePooling1D()(logmel(wave, mask=sample_mask)))
    pooled = np.asarray(inner([batch, mask]))
    frames = np.asarray(logmel(batch, mask=mask))
    valid = np.asarray(logmel.compute_mask(batch, mask))
    np.testing.assert_allclose(pooled[1], frames[1][valid[1]].mean(axis=0), rtol=1e-4, atol=1e-3)
    assert not np.allclose(pooled[0], pooled[1], atol=1e-2)


def test_dynamic_shapes_tf_function_and_output_shape():
    layer = MFCC(**COMMON, n_mfcc=13)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def run(x):
        return layer(x)

    for batch, samples in [(1, 8000), (3, 16000), (2, 400)]:
        out = run(tf.zeros([batch, samples]))
        assert tuple(out.shape) == layer.compute_output_shape((batch, samples))
        assert out.shape == (batch, 1 + samples // 160, 13)
    assert layer.compute_output_shape((None, None)) == (None, None, 13)


def test_jit_compile_matches_eager():
    layer = LogMelSpectrogram(**COMMON, pad_mode="reflect")
    y = np.stack([_signal(seed=9), _signal(seed=10)])
    mask = np.ones_like(y, bool)
    mask[0, 12000:] = False
    compiled = tf.function(lambda x, m: (layer(x, mask=m), layer.compute_mask(x, m)), jit_compile=True)
    out, frame_mask = compiled(tf.constant(y), tf.constant(mask))
    np.testing.assert_allclose(out, layer(y, mask=mask), atol=1e-3)
    np.testing.assert_array_equal(frame_mask, layer.compute_mask(y, mask))


@pytest.mark.parametrize("top_db", [20.0, 40.0])
def test_trim_silence_matches_librosa_trim(top_db):
    rng = np.random.default_rng(11)
    y = 1e-4 * rng.normal(size=3 * SR)
    y[SR // 2 + 300 : 2 * SR - 700] += 0.5 * np.sin(2 * np.pi * 300 * np.arange(2 * SR - 700 - SR // 2 - 300) / SR)
    y = y.astype(np.float32)
    _, (start, end) = librosa.effects.trim(y.astype(np.float64), top_db=top_db, frame_length=1024, hop_length=256)
    layer = TrimSilence(top_db=top_db, frame_length=1024, hop_length=256)
    mask = np.asarray(layer.compute_mask(y[None]))[0]
    valid = np.flatnonzero(mask)
    assert (valid[0], valid[-1] + 1) == (start, end)
    assert mask.sum() == end - start  # one contiguous span
    out = np.asarray(layer(y[None]))[0]
    assert np.all(out[:start] == 0) and np.all(out[end:] == 0)
    np.testing.assert_array_equal(out[start:end], y[start:end])


def test_trim_silence_respects_an_input_mask():
    y = np.zeros((1, 8192), np.float32)
    y[0, 2048:6144] = 1.0
    given = np.ones((1, 8192), bool)
    given[0, 4096:] = False
    mask = np.asarray(TrimSilence(frame_length=1024, hop_length=256).compute_mask(y, given))[0]
    assert not mask[4096:].any() and mask[2048:4096].all()


def test_utterance_normalization_matches_masked_numpy():
    rng = np.random.default_rng(12)
    x = rng.normal(3.0, 2.0, size=(2, 7, 4)).astype(np.float32)
    mask = np.ones((2, 7), bool)
    mask[1, 4:] = False
    out = np.asarray(UtteranceNormalization(epsilon=0.0)(x, mask=mask))
    for b in range(2):
        v = x[b][mask[b]]
        expected = (v - v.mean(0)) / v.std(0)
        np.testing.assert_allclose(out[b][mask[b]], expected, rtol=1e-4, atol=1e-5)
    assert np.all(out[1, 4:] == 0)
    # rank 2: whole-utterance statistics (e.g. waveform normalisation)
    w = rng.normal(size=(1, 100)).astype(np.float32)
    out2 = np.asarray(UtteranceNormalization(epsilon=0.0)(w))[0]
    np.testing.assert_allclose(out2, (w[0] - w[0].mean()) / w[0].std(), rtol=1e-4, atol=1e-5)


def test_spec_augment_identity_at_inference_and_band_masks_in_training():
    x = np.random.default_rng(13).normal(size=(4, 50, 20)).astype(np.float32) + 10.0
    layer = SpecAugment(freq_masks=2, freq_mask_width=5, time_masks=2, time_mask_width=8, seed=1)
    np.testing.assert_array_equal(layer(x, training=False), x)
    np.testing.assert_array_equal(layer(x), x)
    out = np.asarray(layer(x, training=True))
    hidden = out == 0.0
    assert hidden.any() and not hidden.all()
    assert np.all(out[~hidden] == x[~hidden])
    for b in range(4):
        rows = hidden[b].all(axis=1)  # fully masked time steps
        cols = hidden[b].all(axis=0)  # fully masked mel bands
        # every masked cell lies in a masked band (time or frequency): SpecAugment's shape
        np.testing.assert_array_equal(hidden[b], rows[:, None] | cols[None, :])
        assert rows.sum() <= 2 * 8 and cols.sum() <= 2 * 5


def test_wave_augment_identity_at_inference_and_changes_in_training():
    x = np.random.default_rng(14).normal(size=(3, 4000)).astype(np.float32)
    layer = WaveAugment(gain_db=6.0, max_shift=100, seed=2)
    np.testing.assert_array_equal(layer(x, training=False), x)
    out = np.asarray(layer(x, training=True))
    assert out.shape == x.shape and not np.allclose(out, x)
    gain_only = WaveAugment(gain_db=6.0, add_noise=False, max_shift=0, seed=3)
    ratio = np.asarray(gain_only(x, training=True)) / x
    for row in ratio:  # one gain per example, within +-6 dB
        assert np.ptp(row) < 1e-4 and 10 ** (-6 / 20) - 1e-5 <= row[0] <= 10 ** (6 / 20) + 1e-5
    shift_only = WaveAugment(gain_db=0.0, add_noise=False, max_shift=50, seed=4)
    shifted = np.asarray(shift_only(x, training=True))
    for b in range(3):  # a pure shift: some lag in [-50, 50] reproduces the input
        assert any(np.array_equal(shifted[b, 60:-60], x[b, 60 - s : 4000 - 60 - s]) for s in range(-50, 51))
    noise_only = WaveAugment(gain_db=0.0, max_shift=0, min_snr_db=20.0, max_snr_db=20.0, seed=5)
    noise = np.asarray(noise_only(x, training=True)) - x
    snr = 10 * np.log10(np.mean(x**2, axis=1) / np.mean(noise**2, axis=1))
    np.testing.assert_allclose(snr, 20.0, atol=0.5)
    mask = np.ones_like(x, bool)
    mask[:, 3000:] = False
    assert np.all(np.asarray(layer(x, mask=mask, training=True))[:, 3000:] == 0)


LAYERS = [
    lambda: LogMelSpectrogram(**COMMON, htk=True, norm=None, log="natural", log_floor=1e-4, name="logmel"),
    lambda: MFCC(**COMMON, n_mfcc=12, lifter=22.0, top_db=None),
    lambda: TrimSilence(top_db=30.0, frame_length=512, hop_length=128),
    lambda: UtteranceNormalization(epsilon=1e-3, scale=False),
    lambda: SpecAugment(freq_masks=1, time_mask_width=3, seed=7),
    lambda: WaveAugment(gain_db=3.0, max_shift=10, seed=7),
]


def test_trim_silence_moved_module_keeps_its_registered_name():
    """TrimSilence lives in seqapps.layers.trim_silence; the old import path, the package
    export and the registered name that saved .keras files hold all still lead to it."""
    from seqapps import layers
    from seqapps.layers import trim_silence

    assert TrimSilence is layers.TrimSilence is trim_silence.TrimSilence
    assert keras.saving.get_registered_name(TrimSilence) == "seqapps>TrimSilence"
    saved_before_the_move = {"module": "seqapps.layers.audio_frontends", "class_name": "TrimSilence",
                             "registered_name": "seqapps>TrimSilence",
                             "config": {"name": "trim", "top_db": 30.0, "frame_length": 512,
                                        "hop_length": 128, "amin": 1e-5}}
    revived = keras.saving.deserialize_keras_object(saved_before_the_move)
    assert type(revived) is TrimSilence and (revived.top_db, revived.hop_length) == (30.0, 128)


@pytest.mark.parametrize("make", LAYERS, ids=lambda f: type(f()).__name__)
def test_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is type(layer) and revived.get_config() == config
    x = _signal(4000, seed=15)[None]
    if isinstance(layer, (UtteranceNormalization, SpecAugment)):
        x = np.asarray(LogMelSpectrogram(**COMMON)(x))
    np.testing.assert_allclose(clone(x), layer(x), atol=1e-5)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="`n_fft` must be a positive integer. Received: n_fft=0"):
        LogMelSpectrogram(n_fft=0)
    with pytest.raises(ValueError, match="`pad_mode`"):
        LogMelSpectrogram(pad_mode="edge")
    with pytest.raises(ValueError, match="`power`"):
        LogMelSpectrogram(power=3.0)
    with pytest.raises(ValueError, match="`n_mfcc`"):
        MFCC(n_mels=10, n_mfcc=20)


def test_save_and_load_keras_file(tmp_path):
    wave = keras.Input((None,), dtype="float32")
    x = WaveAugment(seed=0)(wave)
    x = LogMelSpectrogram(**COMMON)(x)
    x = UtteranceNormalization()(x)
    x = SpecAugment(seed=0)(x)
    mfcc = MFCC(**COMMON, n_mfcc=10)(wave)
    out = keras.layers.Concatenate()([x, mfcc])
    model = keras.Model(wave, keras.layers.Dense(3)(out))
    path = tmp_path / "frontend.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    y = _signal(seed=16)[None]
    np.testing.assert_allclose(loaded(y), model(y), atol=1e-4)
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]


def test_save_and_load_a_masked_model(tmp_path):
    wave = keras.Input((None,), dtype="float32")
    sample_mask = keras.Input((None,), dtype="bool")
    trimmed = TrimSilence(top_db=40.0, frame_length=512, hop_length=128)(wave, mask=sample_mask)
    x = LogMelSpectrogram(**COMMON)(trimmed)  # the trimmed mask flows on implicitly
    x = UtteranceNormalization()(x)
    out = keras.layers.GRU(3)(x)  # mask-aware: stops at the last valid frame
    model = keras.Model([wave, sample_mask], keras.layers.Dense(2)(out))
    model.save(tmp_path / "masked.keras")
    loaded = keras.saving.load_model(tmp_path / "masked.keras")
    y = np.zeros((2, SR), np.float32)
    y[:, 4000:12000] = _signal(8000, seed=17)
    mask = np.ones_like(y, bool)
    mask[1, 10000:] = False
    np.testing.assert_allclose(loaded([y, mask]), model([y, mask]), atol=1e-4)
    assert not np.allclose(model([y, mask])[0], model([y, mask])[1], atol=1e-3)  # masks mattered
