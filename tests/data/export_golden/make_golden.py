"""Write the export goldens: tiny seeded models as .keras and what their exports answer.

Run once with the code whose answers are the reference (it was run before the
"One house" refactor of seqapps.export):

    PYTHONPATH=. python tests/data/export_golden/make_golden.py

For every model NAME it writes NAME.keras and NAME.npz beside this file. The .npz holds
the fixed inputs ("in/<signature>/<input>/<case>") and the outputs of the exported
SavedModel ("out/<signature>/<output>/<case>"); tests/seqapps/test_export_golden.py
exports the .keras files with the current code and compares.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from seqapps.export import export_model, load_exported  # noqa: E402
from seqapps.layers.audio_frontends import LogMelSpectrogram  # noqa: E402
from seqapps.layers.video_frontends import FrameFeatures, FrameMotion, FramePixels  # noqa: E402
from seqapps.tasks import SequenceClassifier, SequenceRegressor  # noqa: E402

# name -> (preprocessing, raw lengths to test)
PREPROCESSING = {
    "audio": ({"kind": "audio", "sample_rate": 8000, "window_samples": 800, "hop_samples": 400},
              (300, 800, 1900)),
    "video": ({"kind": "video", "fps": 8, "size": [8, 8], "window_frames": 6, "hop_frames": 3},
              (2, 6, 11)),
    "regressor": ({"kind": "features", "window_frames": 5, "hop_frames": 2}, (1, 5, 12)),
    "per_step": ({"kind": "features", "window_frames": 5, "hop_frames": 2}, (3, 9)),
}


def _normalized(model):
    size = model.feature_size
    model.normalization.mean.assign(np.linspace(-0.5, 0.5, size).astype("float32"))
    model.normalization.variance.assign(np.linspace(0.5, 2.0, size).astype("float32"))
    return model


def build_models() -> dict:
    keras.utils.set_random_seed(2026)
    return {
        "audio": _normalized(SequenceClassifier(
            num_classes=3, class_names=["yes", "no", "up"], input_shape=(None,),
            frontend=LogMelSpectrogram(sample_rate=8000, n_fft=256, hop_length=80, n_mels=6),
            units=4, dropout=0.0)),
        "video": _normalized(SequenceClassifier(
            num_classes=2, class_names=["wave", "clap"], input_shape=(None, 8, 8, 3),
            frontend=FrameFeatures(layers=[FramePixels(size=(2, 2)), FrameMotion(size=(8, 8), grid=(2, 2))]),
            units=4, dropout=0.0)),
        "regressor": _normalized(SequenceRegressor(
            num_targets=2, target_names=["x", "y"], input_shape=(None, 3), units=3, num_layers=2,
            pooling="last", dropout=0.0)),
        "per_step": _normalized(SequenceRegressor(
            num_targets=1, input_shape=(None, 3), units=3, pooling="none", dropout=0.0)),
    }


def fixed_inputs(name: str, model, lengths) -> dict:
    """{signature: {case: {input: array}}}, the same on every run (seeded)."""
    rng = np.random.default_rng(7)
    f = model.feature_size
    layers, units = model.num_layers, model.units
    raw = {}
    for n in lengths:
        if name == "audio":
            raw[f"n{n}"] = {"waveform": (0.2 * rng.standard_normal((2, n))).astype("float32")}
        elif name == "video":
            raw[f"n{n}"] = {"frames": rng.integers(0, 256, (2, n, 8, 8, 3), dtype=np.uint8)}
        else:
            raw[f"n{n}"] = {"features": rng.standard_normal((2, n, 3)).astype("float32")}
    features = rng.standard_normal((2, 7, f)).astype("float32")
    mask = np.ones((2, 7), bool)
    mask[1, 5:] = False
    stream = {
        "start": {"features": features[:, :4], "state": np.zeros((2, layers, units), "float32"),
                  "reset": np.array([True, True])},
        "carry": {"features": features[:, 4:],
                  "state": rng.standard_normal((2, layers, units)).astype("float32"),
                  "reset": np.array([False, True])},
    }
    return {"serving_default": raw, "features": {"masked": {"features": features, "mask": mask}},
            "stream": stream}


def run_exported(exported, inputs: dict) -> dict:
    """{"in/sig/input/case": array, "out/sig/output/case": array}."""
    arrays = {}
    for signature, cases in inputs.items():
        function = exported.signatures[signature]
        for case, tensors in cases.items():
            for key, value in tensors.items():
                arrays[f"in/{signature}/{key}/{case}"] = value
            outputs = function(**tensors)
            for key, value in outputs.items():
                value = value.numpy()
                if value.dtype == object:
                    value = value.astype(str)
                arrays[f"out/{signature}/{key}/{case}"] = value
    return arrays


def main() -> None:
    models = build_models()
    with tempfile.TemporaryDirectory() as base:
        for name, model in models.items():
            preprocessing, lengths = PREPROCESSING[name]
            model.save(HERE / f"{name}.keras")
            path = export_model(model, base_dir=base, name=name, preprocessing=preprocessing,
                                warmup_examples=0)
            exported = load_exported(path)
            arrays = run_exported(exported, fixed_inputs(name, model, lengths))
            arrays["preprocessing_json"] = np.array(json.dumps(exported.preprocessing, sort_keys=True))
            card = dict(exported.model_card)
            card.pop("exported_with", None)
            arrays["model_card_json"] = np.array(json.dumps(card, sort_keys=True))
            np.savez_compressed(HERE / f"{name}.npz", **arrays)
            print(name, sorted(k for k in arrays if k.startswith("out/")))


if __name__ == "__main__":
    main()
