"""Usage errors are one line on stderr, exit status 2, before TensorFlow is imported,
and say what the library itself says about the same input (seqapps.cli.checks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqapps.cli import build_parser, checks

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def paths(tmp_path):
    """Every kind of wrong (and right) folder the commands are given."""
    p = {name: tmp_path / name for name in ("no_run", "empty", "flat", "hidden", "data", "afile", "run",
                                            "bare_run", "versions", "export", "x.wav", "config.json")}
    for name in ("empty", "flat", "hidden/.git", "hidden/__MACOSX", "data/yes", "run", "bare_run", "versions/1",
                 "export/3"):
        (tmp_path / name).mkdir(parents=True)
    (p["flat"] / "a.wav").write_bytes(b"RIFF....")
    (p["data"] / "yes" / "a.wav").write_bytes(b"RIFF....")
    p["afile"].write_text("a file, not a folder")
    p["x.wav"].write_bytes(b"RIFF....")
    for folder in (p["run"], p["bare_run"]):
        (folder / "model.keras").write_bytes(b"PK")
    (p["run"] / "config.json").write_text(json.dumps({"kind": "audio", "task": "classify"}))
    (p["export"] / "3" / "saved_model.pb").write_bytes(b"pb")
    p["config.json"].write_text(json.dumps({"kind": "video"}))
    return p


def _cases(p):
    """(argv, the one stderr line expected)."""
    return [
        (["predict", p["no_run"], p["x.wav"]], f"seqapps predict: error: run folder not found: {p['no_run']}"),
        (["predict", p["empty"], p["x.wav"]],
         f"seqapps predict: error: {p['empty']} holds no trained model (model.keras is missing) and no SavedModel "
         "(saved_model.pb)"),
        (["predict", p["versions"], p["x.wav"]],
         f"seqapps predict: error: {p['versions']} holds no trained model (model.keras is missing) and no "
         "SavedModel (saved_model.pb)"),
        (["predict", p["afile"], p["x.wav"]],
         f"seqapps predict: error: {p['afile']} is a file, not a run folder or a SavedModel folder"),
        (["train", "audio", p["flat"], "--run-dir", p["no_run"]],
         f"seqapps train: error: data folder {p['flat']} has no class sub-folders "
         f"(expected {p['flat']}/CLASS_NAME/file.wav)"),
        (["train", "video", p["hidden"], "--run-dir", p["no_run"]],
         f"seqapps train: error: data folder {p['hidden']} has no class sub-folders "
         f"(expected {p['hidden']}/CLASS_NAME/file.mp4)"),
        (["train", "audio", p["data"], "--test-dir", p["empty"], "--run-dir", p["no_run"]],
         f"seqapps train: error: data folder {p['empty']} has no class sub-folders "
         f"(expected {p['empty']}/CLASS_NAME/file.wav)"),
        (["train", "audio", p["data"], "--test-dir", p["data"], "--test-manifest", p["x.wav"], "--run-dir",
          p["no_run"]], "seqapps train: error: give --test-dir or --test-manifest, not both"),
        (["train", "audio", p["data"], "--task", "regress", "--run-dir", p["no_run"]],
         "seqapps train: error: regression needs a --manifest CSV with numeric targets (a folder gives classes)"),
        (["train", "audio", p["data"], "--run-dir", p["no_run"], "--config", p["no_run"] / "c.json"],
         f"seqapps train: error: config file not found: {p['no_run'] / 'c.json'}"),
        (["train", "audio", p["data"], "--folds", "3", "--test-dir", p["data"], "--run-dir", p["no_run"]],
         "seqapps train: error: --folds makes its own held-out groups: leave out --test-dir / --test-manifest"),
        (["train", "audio", p["data"], "--run-dir", p["afile"] / "run"],
         f"seqapps train: error: run folder {p['afile'] / 'run'} cannot be made: {p['afile']} is a file, "
         "not a folder"),
        (["evaluate", p["no_run"], p["data"]], f"seqapps evaluate: error: run folder not found: {p['no_run']}"),
        (["evaluate", p["empty"], p["data"]],
         f"seqapps evaluate: error: {p['empty']} holds no trained model (model.keras is missing); "
         "run `seqapps train` first"),
        (["evaluate", p["run"], p["flat"]],
         f"seqapps evaluate: error: data folder {p['flat']} has no class sub-folders "
         f"(expected {p['flat']}/CLASS_NAME/file.wav)"),
        (["evaluate", p["no_run"], "--streaming", p["x.wav"]],
         f"seqapps evaluate: error: {p['no_run']}: neither a run folder (model.keras) nor a SavedModel"),
        (["export", p["no_run"], "--name", "x"],
         f"seqapps export: error: {p['no_run']}: no model.keras (is this a `seqapps train` run folder?)"),
        (["export", p["bare_run"], "--name", "x"], f"seqapps export: error: {p['bare_run'] / 'config.json'} is missing"),
        (["diagnose", p["no_run"]], f"seqapps diagnose: error: run folder not found: {p['no_run']}"),
        (["diagnose", p["empty"]],
         f"seqapps diagnose: error: {p['empty']} holds no trained model (model.keras is missing); "
         "run `seqapps train` first"),
        (["diagnose"], "seqapps diagnose: error: give exactly one of RUN or --config FILE"),
        (["diagnose", "--config", p["no_run"] / "c.json"],
         f"seqapps diagnose: error: config file not found: {p['no_run'] / 'c.json'}"),
        (["diagnose", "--config", p["config.json"], "--data", p["flat"]],
         f"seqapps diagnose: error: data folder {p['flat']} has no class sub-folders "
         f"(expected {p['flat']}/CLASS_NAME/file.mp4)"),
        (["detect", p["no_run"], p["x.wav"]],
         f"seqapps detect: error: {p['no_run']}: neither a run folder (model.keras) nor a SavedModel"),
        (["detect", p["versions"], p["x.wav"]],
         f"seqapps detect: error: {p['versions']}: neither a run folder (model.keras) nor a SavedModel"),
        (["listen", p["empty"]],
         f"seqapps listen: error: {p['empty']}: neither a run folder (model.keras) nor a SavedModel"),
    ]


def test_usage_errors_are_one_line_and_import_no_tensorflow(paths):
    cases = _cases(paths)
    code = (
        "import contextlib, io, json, sys\n"
        "from seqapps.cli import main\n"
        "results = []\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        status = main(argv)\n"
        "    results.append([status, err.getvalue()])\n"
        "print(json.dumps({'results': results, 'heavy': [m for m in ('tensorflow', 'keras', 'librosa', 'numpy')\n"
        "                                                if m in sys.modules]}))\n"
    )
    argvs = json.dumps([[str(a) for a in argv] for argv, _ in cases])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code, argvs], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout)
    assert answer["heavy"] == []
    for (argv, expected), (status, stderr) in zip(cases, answer["results"], strict=True):
        assert (status, stderr) == (2, expected + "\n"), argv


def _problem(argv):
    return checks.usage_problem(build_parser().parse_args([str(a) for a in argv]))


def test_valid_inputs_pass_the_early_checks(paths):
    p = paths
    for argv in (["predict", p["run"], p["x.wav"]], ["predict", p["export"], p["x.wav"]],
                 ["predict", p["export"] / "3", p["x.wav"]], ["detect", p["export"], p["x.wav"]],
                 ["detect", p["run"], p["x.wav"]], ["listen", p["export"] / "3"],
                 ["train", "audio", p["data"], "--run-dir", p["no_run"] / "deeper" / "run"],
                 ["evaluate", p["run"], p["data"]], ["export", p["run"], "--name", "x"],
                 ["diagnose", p["run"], "--data", p["data"]], ["diagnose", "--config", p["config.json"]]):
        assert _problem(argv) is None, argv


def test_early_checks_say_what_the_library_says(paths):
    """The late checks (seqapps.runs, pipelines.sources) give the same words for the same
    input, so the early ones stay true when either changes."""
    from pipelines import sources
    from pipelines.report import BadInputReport
    from seqapps.errors import ConfigError
    from seqapps.runs import data as run_data
    from seqapps.runs.detect import load_streaming_model
    from seqapps.runs.diagnose import diagnose_run
    from seqapps.runs.evaluate import make_predictor
    from seqapps.runs.export import export_run
    from seqapps.runs.settings import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS
    from seqapps.runs.train import load_run

    p = paths

    def late(function, *args, **kwargs):
        with pytest.raises(ConfigError) as err:
            function(*args, **kwargs)
        return str(err.value)

    for path in (p["no_run"], p["empty"], p["versions"]):
        assert late(make_predictor, path) == checks.predictor_problem(path)
    for path in (p["no_run"], p["empty"]):
        assert late(load_run, path) == checks.run_folder_problem(path)
    for path in (p["no_run"], p["empty"], p["afile"]):
        assert late(load_streaming_model, path) == checks.streaming_problem(path)
    for path in (p["no_run"], p["bare_run"]):
        assert late(export_run, path, name="x", base_dir=p["no_run"]) == checks.export_problem(path)
    for folder, kind, extensions in ((p["flat"], "audio", AUDIO_EXTENSIONS), (p["hidden"], "video", VIDEO_EXTENSIONS),
                                     (p["no_run"], "audio", AUDIO_EXTENSIONS), (p["afile"], "audio", AUDIO_EXTENSIONS)):
        said = late(sources.from_directory, folder, extensions=extensions, kind=kind)
        assert said == checks.data_folder_problem(folder, kind)
    report = BadInputReport()
    assert late(run_data.load_source, "audio", data_dir=p["data"], manifest=p["x.wav"], report=report) \
        == _problem(["evaluate", p["run"], p["data"], "--manifest", p["x.wav"]])
    assert late(run_data.load_source, "audio", data_dir=p["data"], task="regress", report=report) \
        == _problem(["train", "audio", p["data"], "--task", "regress", "--run-dir", p["no_run"]])
    assert late(run_data.load_training_source, "audio", data_dir=p["data"], test_dir=p["data"],
                test_manifest=p["x.wav"], report=report) \
        == _problem(["train", "audio", p["data"], "--test-dir", p["data"], "--test-manifest", p["x.wav"],
                     "--run-dir", p["no_run"]])
    assert late(diagnose_run) == _problem(["diagnose"])
    assert late(diagnose_run, config_file=p["no_run"] / "c.json") \
        == _problem(["diagnose", "--config", p["no_run"] / "c.json"])
