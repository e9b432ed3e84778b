"""Exports answer exactly as before: goldens recorded with the code before the refactor.

tests/data/export_golden/ holds tiny seeded models (.keras) and, per model, the inputs
and outputs of the SavedModel that the earlier seqapps.export wrote for it
(make_golden.py there). Here the same .keras files are exported with the current code
and every signature must give the same outputs on the same inputs (to 1e-6).
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

import seqapps.tasks  # noqa: F401  (registers the classes the .keras files name)
from seqapps.export import export_model, load_exported

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "export_golden"
NAMES = ("audio", "video", "regressor", "per_step")
PREPROCESSING = {
    "audio": {"kind": "audio", "sample_rate": 8000, "window_samples": 800, "hop_samples": 400},
    "video": {"kind": "video", "fps": 8, "size": [8, 8], "window_frames": 6, "hop_frames": 3},
    "regressor": {"kind": "features", "window_frames": 5, "hop_frames": 2},
    "per_step": {"kind": "features", "window_frames": 5, "hop_frames": 2},
}


def _cases(golden) -> dict:
    """{(signature, case): {input: array}} from the keys "in/<signature>/<input>/<case>"."""
    cases: dict = {}
    for key in golden.files:
        if key.startswith("in/"):
            _, signature, name, case = key.split("/")
            cases.setdefault((signature, case), {})[name] = golden[key]
    return cases


@pytest.mark.parametrize("name", NAMES)
def test_export_answers_as_before(tmp_path, name):
    golden = np.load(GOLDEN / f"{name}.npz")
    model = keras.models.load_model(GOLDEN / f"{name}.keras", compile=False)
    path = export_model(model, base_dir=tmp_path, name=name, preprocessing=PREPROCESSING[name],
                        warmup_examples=1)
    exported = load_exported(path)
    cases = _cases(golden)
    assert {signature for signature, _ in cases} == {"serving_default", "features", "stream"}
    for (signature, case), inputs in cases.items():
        outputs = exported.signatures[signature](**inputs)
        expected = {key.split("/")[2]: golden[key] for key in golden.files
                    if key.startswith(f"out/{signature}/") and key.endswith(f"/{case}")}
        assert set(outputs) == set(expected), (signature, case)
        for key, want in expected.items():
            got = outputs[key].numpy()
            if got.dtype == object:
                np.testing.assert_array_equal(got.astype(str), want, err_msg=f"{signature}/{key}/{case}")
            else:
                assert got.dtype == want.dtype and got.shape == want.shape, (signature, key, case)
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=f"{signature}/{key}/{case}")
    # The assets clients read keep their content (the versions of TF/Keras may differ).
    assert exported.preprocessing == json.loads(str(golden["preprocessing_json"]))
    card = dict(exported.model_card)
    card.pop("exported_with", None)
    # The stream_raw signature came after the goldens: everything the goldens hold is as before.
    card.pop("stream_raw", None)
    card["signatures"] = {key: value for key, value in card["signatures"].items() if key != "stream_raw"}
    assert card == json.loads(str(golden["model_card_json"]))
