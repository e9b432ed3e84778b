"""TF Serving export: layout, versions, atomicity, signatures, and proof that TF Serving
can run the result (standard ops only, loads without seqapps, saved_model_cli, the REST
bodies documented in docs/serving.md).

References are independent of seqapps.export: windows are cut in NumPy (with the window
count of pipelines.windows) and the in-process Keras model predicts each window.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipelines.windows import n_windows
from seqapps.errors import ConfigError
from seqapps.export import (
    SIGNATURES,
    TEMP_PREFIX,
    VersionExistsError,
    export_model,
    export_run,
    load_exported,
    next_version,
)
from seqapps.tasks import SequenceClassifier, SequenceRegressor

ROOT = Path(__file__).resolve().parents[2]
# The documented REST request bodies.
REQUESTS_DOC = ROOT / "docs" / "serving.md"  # the request bodies moved out of the README
PYTHON = sys.executable
ATOL = 1e-5
RNG = np.random.default_rng(11)

AUDIO_PREPROCESSING = {"kind": "audio", "sample_rate": 16000, "window_samples": 16000, "hop_samples": 8000}
VIDEO_PREPROCESSING = {"kind": "video", "fps": 12, "size": [64, 64], "window_frames": 24, "hop_frames": 12}
FEATURES_PREPROCESSING = {"kind": "features", "window_frames": 6, "hop_frames": 3}


def _set_normalization(model):
    # Non-trivial statistics, so the exported graph must carry the normalisation.
    size = model.feature_size
    model.normalization.mean.assign(np.linspace(-1.0, 1.0, size).astype("float32"))
    model.normalization.variance.assign(np.linspace(0.5, 2.0, size).astype("float32"))
    return model


def _audio_model():
    """The README's "speech" example model: 8 log-mel bands, one layer of 4 units."""
    try:
        from seqapps.layers.audio_frontends import LogMelSpectrogram
    except ImportError:
        return None
    frontend = LogMelSpectrogram(sample_rate=16000, n_fft=512, hop_length=160, n_mels=8)
    return _set_normalization(SequenceClassifier(
        num_classes=3, class_names=["yes", "no", "up"], input_shape=(None,), frontend=frontend,
        units=4, dropout=0.0))


def _video_model():
    """The README's "gestures" example model: 2x2 pixels per frame, one layer of 4 units."""
    try:
        from seqapps.layers.video_frontends import FramePixels
    except ImportError:
        return None
    return _set_normalization(SequenceClassifier(
        num_classes=2, class_names=["wave", "clap"], input_shape=(None, None, None, 3),
        frontend=FramePixels(size=(2, 2)), units=4, dropout=0.0))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{key: (model, preprocessing, version folder)}, exported once for the module."""
    keras.utils.set_random_seed(5)
    base = tmp_path_factory.mktemp("saved_models")
    models = {
        "features": (_set_normalization(SequenceClassifier(
            num_classes=3, class_names=["a", "b", "c"], input_shape=(None, 3), units=5,
            num_layers=2, pooling="last", dropout=0.0)), FEATURES_PREPROCESSING),
        "regressor": (_set_normalization(SequenceRegressor(
            num_targets=2, input_shape=(None, 3), units=4, dropout=0.0)), {"kind": "features"}),
        "speech": (_audio_model(), AUDIO_PREPROCESSING),
        "gestures": (_video_model(), VIDEO_PREPROCESSING),
    }
    out = {}
    for key, (model, preprocessing) in models.items():
        if model is None:
            continue
        path = export_model(model, base_dir=base, name=key, preprocessing=preprocessing,
                            model_card={"metrics": {"accuracy": 0.5}}, warmup_examples=2)
        out[key] = (model, preprocessing, path)
    return out


_LOADED: dict = {}


def _load(path):
    """load_exported, once per version folder (a load and first call cost ~1.5 s)."""
    if path not in _LOADED:
        _LOADED[path] = load_exported(path)
    return _LOADED[path]


def _need(exported, key):
    if key not in exported:
        pytest.skip(f"the {key} frontend module is not importable yet")
    return exported[key]


# ----------------------------------------------------------------- references


def _reference_raw(model, raw, preprocessing):
    """Windows cut in NumPy, each predicted by the Keras model, averaged per clip."""
    window_key, hop_key = ("window_samples", "hop_samples") if preprocessing["kind"] == "audio" \
        else ("window_frames", "hop_frames")
    window, hop = preprocessing[window_key], preprocessing[hop_key]
    n = raw.shape[1]
    count = max(n_windows(n, window=window, hop=hop), 1)
    padded = np.zeros((raw.shape[0], (count - 1) * hop + window, *raw.shape[2:]), raw.dtype)
    padded[:, :n] = raw
    outputs = []
    for w in range(count):
        start = w * hop
        mask = np.broadcast_to(np.arange(start, start + window) < n, (raw.shape[0], window))
        outputs.append(model({"inputs": padded[:, start:start + window], "mask": mask},
                             training=False).numpy())
    return np.mean(outputs, axis=0)


def _raw_input(key, *, batch, length):
    if key == "speech":
        return (0.1 * RNG.standard_normal((batch, length))).astype("float32")
    if key == "gestures":
        return RNG.integers(0, 256, (batch, length, 6, 8, 3), dtype=np.uint8)
    return RNG.standard_normal((batch, length, 3)).astype("float32")


RAW_LENGTHS = {"speech": (1, 16000, 30000), "gestures": (1, 24, 40), "features": (1, 6, 14)}


# ----------------------------------------------------------------- layout, versions


def test_layout_assets_and_model_card(exported):
    model, _, path = exported["features"]
    assert path.name == "1"
    for part in ("saved_model.pb", "variables", "assets/labels.txt", "assets/preprocessing.json",
                 "assets/model_card.json", "assets.extra/tf_serving_warmup_requests"):
        assert (path / part).exists(), part
    assert (path / "assets/labels.txt").read_text().splitlines() == ["a", "b", "c"]
    settings = json.loads((path / "assets/preprocessing.json").read_text())
    assert settings["window_frames"] == 6
    assert settings["serving"]["windowing"] == {"window": 6, "hop": 3, "unit": "frames",
                                                "pad_end": True, "aggregation": "mean"}
    card = json.loads((path / "assets/model_card.json").read_text())
    assert card["metrics"] == {"accuracy": 0.5}
    assert card["stream_state_shape"] == [2, 5]
    assert card["signatures"]["stream"]["inputs"]["state"] == {"dtype": "float32", "shape": [-1, 2, 5]}
    assert not any(p.name.startswith(TEMP_PREFIX) for p in path.parent.iterdir())
    regressor_assets = exported["regressor"][2] / "assets"
    assert not (regressor_assets / "labels.txt").exists()


def test_versions_increment_and_are_never_overwritten(tmp_path):
    model = SequenceRegressor(input_shape=(None, 2), units=3)
    first = export_model(model, base_dir=tmp_path, name="m", preprocessing={}, warmup_examples=0)
    (tmp_path / "m" / "notes").mkdir()  # non-integer folders are not versions
    second = export_model(model, base_dir=tmp_path, name="m", preprocessing={}, version=5,
                          warmup_examples=0)
    assert [first.name, second.name] == ["1", "5"]
    assert next_version(tmp_path / "m") == 6
    before = (first / "saved_model.pb").read_bytes()
    with pytest.raises(VersionExistsError, match=re.escape(str(tmp_path / "m" / "1"))):
        export_model(model, base_dir=tmp_path, name="m", preprocessing={}, version=1)
    assert (first / "saved_model.pb").read_bytes() == before
    with pytest.raises(ConfigError, match="`version`"):
        export_model(model, base_dir=tmp_path, name="m", preprocessing={}, version=0)
    assert load_exported(tmp_path / "m").path == second  # the name folder means its latest version


KILLED_EXPORT = """
import os
os.environ["KERAS_BACKEND"] = "tensorflow"
from seqapps.export import export_model
from seqapps.tasks import SequenceClassifier
model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=4)
export_model(model, base_dir={base!r}, name="m", preprocessing={{}})
"""


def test_killed_export_leaves_no_partial_version(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([PYTHON, "-c", KILLED_EXPORT.format(base=str(tmp_path))], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    model_dir = tmp_path / "m"
    deadline = time.monotonic() + 60
    try:
        while not (model_dir.is_dir() and any(model_dir.glob(f"{TEMP_PREFIX}*"))):
            assert process.poll() is None, "the export finished or failed before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    names = [p.name for p in model_dir.iterdir()]
    assert not [n for n in names if n.isdigit()], names  # no version, not even a partial one
    assert any(n.startswith(TEMP_PREFIX) for n in names)  # it was killed mid-way
    # The next export takes version 1 and clears the dead process's leftovers.
    model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=4)
    path = export_model(model, base_dir=tmp_path, name="m", preprocessing={}, warmup_examples=0)
    assert path.name == "1"
    assert sorted(p.name for p in model_dir.iterdir()) == ["1"]


def test_export_run_reads_the_run_folder(tmp_path, exported):
    model, _, _ = _need(exported, "speech")
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "config.json").write_text(json.dumps(
        {"kind": "audio", "task": "classify", "preprocessing": AUDIO_PREPROCESSING,
         "data": {"train_clips": 120}}))
    (run / "labels.json").write_text(json.dumps(["left", "right", "stop"]))
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.91}))
    path = export_run(run, base_dir=tmp_path / "saved", name="kws")
    assert path == tmp_path / "saved" / "kws" / "1"
    card = json.loads((path / "assets/model_card.json").read_text())
    assert card["metrics"] == {"accuracy": 0.91}
    assert card["data"] == {"train_clips": 120}
    assert card["training_config"]["task"] == "classify"
    loaded = _load(path)
    assert loaded.labels == ["left", "right", "stop"]
    clip = _raw_input("speech", batch=2, length=12000)
    np.testing.assert_allclose(loaded(clip)["probabilities"],
                               _reference_raw(model, clip, AUDIO_PREPROCESSING), atol=ATOL)
    with pytest.raises(ConfigError, match="model.keras"):
        export_run(tmp_path, base_dir=tmp_path / "saved", name="x")


# ----------------------------------------------------------------- signatures


@pytest.mark.parametrize("key", ["features", "speech", "gestures"])
def test_raw_signature_windows_any_length_like_training(exported, key):
    model, preprocessing, path = _need(exported, key)
    loaded = _load(path)
    for length in RAW_LENGTHS[key]:
        raw = _raw_input(key, batch=2, length=length)
        outputs = loaded(raw)
        expected = _reference_raw(model, raw, preprocessing)
        np.testing.assert_allclose(outputs["probabilities"], expected, atol=ATOL)
        np.testing.assert_array_equal(outputs["class_ids"], expected.argmax(-1))
        assert list(outputs["labels"]) == [model.class_names[i] for i in expected.argmax(-1)]


def test_features_signature_with_mask_and_regression_outputs(exported):
    for key in ("features", "regressor"):
        model, _, path = exported[key]
        loaded = _load(path)
        x = RNG.standard_normal((3, 7, 3)).astype("float32")
        mask = np.arange(7)[None] < np.array([[7], [4], [1]])
        outputs = loaded.features(x, mask)
        expected = model({"features": x, "mask": mask}, training=False).numpy()
        name = "probabilities" if key == "features" else "predictions"
        np.testing.assert_allclose(outputs[name], expected, atol=ATOL)
        # Padding changes nothing: row 1 alone, unpadded.
        alone = model({"features": x[1:2, :4]}, training=False).numpy()
        np.testing.assert_allclose(outputs[name][1:2], alone, atol=ATOL)


def test_stream_chunks_equal_whole_sequence_and_reset(exported):
    model, _, path = exported["features"]
    loaded = _load(path)
    x = RNG.standard_normal((2, 11, 3)).astype("float32")
    whole = loaded.stream(x)
    state, pieces = None, []
    for start, stop in ((0, 1), (1, 5), (5, 11)):
        out = loaded.stream(x[:, start:stop], state)
        pieces.append(out["probabilities"])
        state = out["state"]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole["probabilities"], atol=ATOL)
    np.testing.assert_allclose(state, whole["state"], atol=ATOL)
    # pooling="last": the last step's output is the whole-sequence prediction (Keras model).
    np.testing.assert_allclose(whole["probabilities"][:, -1],
                               model({"features": x}, training=False).numpy(), atol=ATOL)
    assert whole["class_ids"].shape == (2, 11) and whole["labels"].shape == (2, 11)
    # reset starts row 0 afresh while row 1 continues its stream.
    out = loaded.stream(x[:, :3], state, reset=np.array([True, False]))
    fresh = loaded.stream(x[:, :3])
    np.testing.assert_allclose(out["probabilities"][0], fresh["probabilities"][0], atol=ATOL)
    continued, _ = model.stream(x[1:, :3], tf.constant(state[1:]))
    np.testing.assert_allclose(out["probabilities"][1], continued.numpy()[0], atol=ATOL)


def test_warmup_requests_are_predict_logs_that_run(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    _, _, path = exported["features"]
    loaded = _load(path)
    seen = []
    for record in tf.data.TFRecordDataset(str(path / "assets.extra/tf_serving_warmup_requests")):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.name == "features"
        signature = request.model_spec.signature_name
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = loaded.signatures[signature](**inputs)
        assert np.isfinite(outputs["probabilities"].numpy()).all()
        seen.append(signature)
    assert sorted(seen) == sorted(SIGNATURES * 2)


# ----------------------------------------------------------------- TF Serving can run it

PYTHON_BACKED_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def test_graph_holds_only_standard_tensorflow_ops(exported):
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    for _, _, path in exported.values():
        saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
        for meta_graph in saved.meta_graphs:
            library = meta_graph.graph_def.library
            functions = {f.signature.name for f in library.function}
            nodes = list(meta_graph.graph_def.node)
            for function in library.function:
                nodes.extend(function.node_def)
            ops = {node.op for node in nodes}
            assert len(ops) > 20
            assert not ops & PYTHON_BACKED_OPS
            # Every op is a registered TensorFlow op (or a call of a function of the graph).
            unknown = {op for op in ops - functions if op_def_registry.get(op) is None}
            assert not unknown, unknown


FRESH_PROCESS = """
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("seqapps", "pipelines"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Blocker())
import numpy as np
import tensorflow as tf
cases = np.load(sys.argv[1], allow_pickle=False)
results = {}
for key in sorted({k.split("|")[0] for k in cases.files}):
    parts = key.split("~")
    loaded = tf.saved_model.load(parts[0])
    inputs = {k.split("|")[1]: cases[k] for k in cases.files if k.split("|")[0] == key}
    outputs = loaded.signatures[parts[1]](**inputs)
    for name, value in outputs.items():
        if value.dtype != tf.string:
            results[key + "|" + name] = value.numpy()
for name in ("seqapps", "pipelines"):
    assert name not in sys.modules, name
np.savez(sys.argv[2], **results)
"""


def _fresh_process_cases(exported):
    """Inputs of every signature of every exported model, and the Keras model's outputs."""
    cases, expected = {}, {}
    for key, (model, preprocessing, path) in exported.items():
        raw_name = json.loads((path / "assets/preprocessing.json").read_text())["serving"]["raw_input"]
        name = "probabilities" if key != "regressor" else "predictions"
        if key != "regressor":
            raw = _raw_input(key, batch=2, length=RAW_LENGTHS[key][-1])
            cases[f"{path}~serving_default|{raw_name}"] = raw
            expected[f"{path}~serving_default|{name}"] = _reference_raw(model, raw, preprocessing)
        x = RNG.standard_normal((2, 5, model.feature_size)).astype("float32")
        mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
        cases[f"{path}~features|features"] = x
        cases[f"{path}~features|mask"] = mask
        expected[f"{path}~features|{name}"] = model({"features": x, "mask": mask}, training=False).numpy()
        state = RNG.standard_normal((2, model.num_layers, model.units)).astype("float32") * 0.5
        cases[f"{path}~stream|features"] = x
        cases[f"{path}~stream|state"] = state
        cases[f"{path}~stream|reset"] = np.array([False, True])
        per_step, new_state = model.stream(x, tf.constant(state), tf.constant([False, True]))
        expected[f"{path}~stream|{name}"] = per_step.numpy()
        expected[f"{path}~stream|state"] = new_state.numpy()
    return cases, expected


@pytest.fixture(scope="module", autouse=True)
def _background(exported, tmp_path_factory):
    """Start the two slow subprocess checks (a fresh TF process, saved_model_cli; mostly
    TensorFlow's import time) at the start of the module; their tests collect them."""
    folder = tmp_path_factory.mktemp("fresh")
    cases, expected = _fresh_process_cases(exported)
    np.savez(folder / "cases.npz", **cases)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)  # and cwd outside the project: seqapps is not importable
    fresh = subprocess.Popen(
        [PYTHON, "-c", FRESH_PROCESS, str(folder / "cases.npz"), str(folder / "out.npz")],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cli = Path(PYTHON).with_name("saved_model_cli")
    show = None
    if cli.exists():
        show = subprocess.Popen(
            [str(cli), "show", "--dir", str(exported["features"][2]), "--all"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    processes = {"fresh": (fresh, folder / "out.npz", expected), "saved_model_cli": show}
    yield processes
    for process in (fresh, show):
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def test_loads_in_a_fresh_process_without_seqapps_and_matches(_background):
    process, out, expected = _background["fresh"]
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    outputs = np.load(out)
    assert len(expected) >= 8
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[name], value, atol=ATOL, err_msg=name)


def test_saved_model_cli_lists_the_signatures(_background):
    process = _background["saved_model_cli"]
    if process is None:
        pytest.skip("saved_model_cli is not installed beside the interpreter")
    text, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    blocks = {name: block for name, block in
              re.findall(r"signature_def\['(\w+)'\]:(.*?)(?=signature_def\[|\Z)", text, re.S)}
    assert set(SIGNATURES) <= set(blocks)

    def tensor(block, name):
        match = re.search(rf"\['{name}'\] tensor_info:\s*dtype: (\w+)\s*shape: (\([^)]*\))", block)
        assert match, (name, block)
        return match.groups()

    assert tensor(blocks["serving_default"], "features") == ("DT_FLOAT", "(-1, -1, 3)")
    assert tensor(blocks["features"], "mask") == ("DT_BOOL", "(-1, -1)")
    assert tensor(blocks["stream"], "state") == ("DT_FLOAT", "(-1, 2, 5)")
    assert tensor(blocks["stream"], "reset") == ("DT_BOOL", "(-1)")
    assert tensor(blocks["stream"], "labels") == ("DT_STRING", "(-1, -1)")
    assert tensor(blocks["serving_default"], "class_ids") == ("DT_INT64", "(-1)")


# ----------------------------------------------------------------- README request bodies


def _documented_requests(text):
    """(model name, request body) for every ```json block that is a request; the model is
    the last /v1/models/NAME mentioned before the block."""
    requests = []
    for match in re.finditer(r"```json\n(.*?)```", text, re.S):
        body = json.loads(match.group(1))
        if not isinstance(body, dict) or not {"instances", "inputs"} & set(body):
            continue
        names = re.findall(r"/v1/models/([\w.-]+)", text[:match.start()])
        assert names, "a request body without a /v1/models/NAME line before it"
        requests.append((names[-1], body))
    return requests


def _rest_to_tensors(body, input_specs):
    """TF Serving's REST conversion: "instances" (rows, stacked on axis 0) or "inputs"
    (columns); a signature with one input may omit the input names."""
    if "instances" in body:
        rows = body["instances"]
        if isinstance(rows[0], dict):
            columns = {name: [row[name] for row in rows] for name in rows[0]}
        else:
            (only,) = input_specs
            columns = {only: rows}
    else:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            (only,) = input_specs
            columns = {only: columns}
    assert set(columns) == set(input_specs), (set(columns), set(input_specs))
    return {name: tf.constant(np.asarray(value, input_specs[name].dtype.as_numpy_dtype))
            for name, value in columns.items()}


def test_readme_request_bodies_run_through_the_signatures(exported):
    if not REQUESTS_DOC.is_file():
        pytest.skip(f"{REQUESTS_DOC} is absent")
    requests = _documented_requests(REQUESTS_DOC.read_text(encoding="utf-8"))
    covered = set()
    for name, body in requests:
        _, _, path = _need(exported, name)
        loaded = _load(path)
        signature = body.get("signature_name", "serving_default")
        function = loaded.signatures[signature]
        tensors = _rest_to_tensors(body, function.structured_input_signature[1])
        outputs = function(**tensors)
        batch = next(iter(tensors.values())).shape[0]
        probabilities = outputs["probabilities"].numpy()
        assert probabilities.shape[0] == batch
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
        covered.add((name, signature, "instances" if "instances" in body else "inputs"))
    expected = {(name, signature, form) for name in ("speech", "gestures") for signature in SIGNATURES
                for form in ("instances", "inputs")}
    assert covered == expected


def test_video_serving_computes_motion_over_the_whole_clip_as_training_does(tmp_path):
    """Training caches frame features of whole clips, then windows them; serving must too
    (FrameMotion at a window's first frame needs the frame before it)."""
    from seqapps.layers.video_frontends import FrameFeatures, FrameMotion, FramePixels

    frontend = FrameFeatures(layers=[FramePixels(size=(2, 2)), FrameMotion(size=(8, 8))])
    model = _set_normalization(SequenceClassifier(
        num_classes=2, class_names=["l", "r"], input_shape=(None, 16, 16, 3), frontend=frontend,
        units=4, dropout=0.0))
    preprocessing = {"kind": "video", "fps": 12, "size": [16, 16], "window_frames": 8, "hop_frames": 4}
    path = export_model(model, base_dir=tmp_path, name="motion", preprocessing=preprocessing, warmup_examples=1)
    raw = RNG.integers(0, 256, (2, 14, 16, 16, 3), dtype=np.uint8)
    features = frontend(raw).numpy()  # whole clips
    count = n_windows(14, window=8, hop=4)
    padded = np.zeros((2, (count - 1) * 4 + 8, features.shape[-1]), "float32")
    padded[:, :14] = features
    expected = np.mean([
        model({"features": padded[:, w * 4:w * 4 + 8],
               "mask": np.broadcast_to(np.arange(w * 4, w * 4 + 8) < 14, (2, 8))}, training=False).numpy()
        for w in range(count)], axis=0)
    served = load_exported(path)(raw)
    np.testing.assert_allclose(served["probabilities"], expected, atol=ATOL)
