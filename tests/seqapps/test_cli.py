"""The seqapps command line end to end on small generated data (real files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqapps.cli import main

TINY = {"model": {"units": 8}, "training": {"batch_size": 16, "learning_rate": 0.01, "patience": 50}}


def _run(*args, timeout=600):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "seqapps", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def audio_set(tmp_path_factory):
    from pipelines.synthetic_audio import write_synthetic_audio

    folder = tmp_path_factory.mktemp("audio")
    write_synthetic_audio(folder, n_per_class=6, seconds=0.5, seed=1)
    config = folder.parent / "tiny.json"
    config.write_text(json.dumps(TINY))
    return folder, config


@pytest.fixture(scope="module")
def trained_run(audio_set, tmp_path_factory):
    folder, config = audio_set
    run_dir = tmp_path_factory.mktemp("run")
    result = _run("train", "audio", folder, "--run-dir", run_dir, "--epochs", 2, "--config", config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test: accuracy=" in result.stdout
    return run_dir


def test_train_writes_every_run_file(trained_run):
    for name in ("model.keras", "config.json", "labels.json", "split.csv", "bad_inputs.json", "metrics.json",
                 "history.json", "curves.png", "confusion_matrix.png"):
        assert (trained_run / name).is_file(), name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert {"val", "test", "data"} <= set(metrics)
    assert 0.0 <= metrics["val"]["accuracy"] <= 1.0
    history = json.loads((trained_run / "history.json").read_text())
    assert len(history["loss"]) == 2
    labels = json.loads((trained_run / "labels.json").read_text())
    assert labels == sorted(labels) and len(labels) == 5


def test_evaluate_json_is_one_object(trained_run, audio_set):
    result = _run("evaluate", trained_run, audio_set[0], "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    metrics = json.loads(lines[0])
    assert {"accuracy", "macro_f1", "n"} <= set(metrics)
    assert metrics["n"] == 30


def test_predict_one_line_per_file(trained_run, audio_set):
    files = sorted(audio_set[0].rglob("*.wav"))[:3]
    result = _run("predict", trained_run, *files)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    labels = json.loads((trained_run / "labels.json").read_text())
    for line, file in zip(lines, files, strict=True):
        name, label, probability = line.split("\t")
        assert name == str(file) and label in labels and 0 < float(probability) <= 1
    as_json = _run("predict", trained_run, files[0], "--json", "--windows")
    record = json.loads(as_json.stdout.strip())
    assert abs(sum(record["probabilities"].values()) - 1) < 1e-4
    assert len(record["windows"]) >= 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "audio", "/no/such/folder", "--run-dir", "/tmp/x"], "/no/such/folder"),
        (["evaluate", "/no/such/run", "/tmp"], "/no/such/run"),
        (["train", "audio", "--run-dir", "/tmp/x"], "DATA_DIR or --manifest"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_run_folder_without_model_and_empty_data_folder(tmp_path, capsys):
    (tmp_path / "empty_run").mkdir()
    assert main(["predict", str(tmp_path / "empty_run"), "x.wav"]) == 2
    assert "model.keras is missing" in capsys.readouterr().err
    (tmp_path / "data" / "cls").mkdir(parents=True)
    (tmp_path / "data" / "cls" / "notes.txt").write_text("no audio here")
    assert main(["train", "audio", str(tmp_path / "data"), "--run-dir", str(tmp_path / "r")]) == 2
    assert "no audio files" in capsys.readouterr().err


def test_unknown_flag_value_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "sound", "data", "--run-dir", "r"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'sound'" in capsys.readouterr().err


def test_every_command_has_help_with_an_example(capsys):
    for command in ("train", "evaluate", "predict", "export", "diagnose", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "example:" in out and f"seqapps {command}" in out


def test_killed_training_resumes_from_last_epoch(audio_set, tmp_path):
    folder, config = audio_set
    run_dir = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "seqapps", "train", "audio", str(folder), "--run-dir", str(run_dir),
               "--epochs", "12", "--config", str(config)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    history = run_dir / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline:
        if history.exists() and len(history.read_text().strip().splitlines()) >= 4:  # header + 3 epochs
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(history.read_text().strip().splitlines()) - 1
    assert 3 <= done_before < 12
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = [int(line.split()[1].split("/")[0]) for line in result.stdout.splitlines() if line.startswith("Epoch ")]
    assert epochs[0] >= done_before, epochs[:3]  # resumed, not restarted
    assert epochs[-1] == 12
    assert len(json.loads((run_dir / "history.json").read_text())["loss"]) >= 12


def test_diagnose_trained_run_and_untrained_config(trained_run, tmp_path):
    result = _run("diagnose", trained_run, "--out", tmp_path / "trained")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "trained" / "gradient_report.json").read_text())
    layer = report["layers"][0]
    assert len(layer["gradient_norms"]) == layer["steps"] > 1
    assert (tmp_path / "trained" / "gradient_norms.png").read_bytes()[:4] == b"\x89PNG"
    config = tmp_path / "untrained.json"
    config.write_text(json.dumps({"kind": "audio", "num_classes": 3, "model": {"units": 8, "num_layers": 2}}))
    result = _run("diagnose", "--config", config, "--out", tmp_path / "untrained")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert set(summary["layers"]) == {"recurrent_0", "recurrent_1"}


def test_export_then_predict_from_savedmodel_matches_run(trained_run, audio_set, tmp_path):
    result = _run("export", trained_run, "--name", "words", "--base-dir", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "words" / "1" / "saved_model.pb").is_file()
    files = sorted(audio_set[0].rglob("*.wav"))[:2]
    from_run = _run("predict", trained_run, *files, "--json")
    from_export = _run("predict", tmp_path / "words", *files, "--json")
    assert from_export.returncode == 0, from_export.stderr[-2000:]
    for a, b in zip(from_run.stdout.splitlines(), from_export.stdout.splitlines(), strict=True):
        a, b = json.loads(a), json.loads(b)
        assert a["label"] == b["label"]
        assert abs(a["probability"] - b["probability"]) < 1e-4
    again = _run("export", trained_run, "--name", "words", "--base-dir", tmp_path, "--version", 1)
    assert again.returncode == 2 and "exists" in again.stderr


def test_regression_train_evaluate_predict(audio_set, tmp_path):
    import csv

    folder, config = audio_set
    rows = list(csv.DictReader((folder / "manifest.csv").open()))
    classes = sorted({row["label"] for row in rows})
    manifest = tmp_path / "regress.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "group"])
        for row in rows:
            writer.writerow([folder / row["path"], classes.index(row["label"]) / 2, row["group"]])
    run_dir = tmp_path / "run"
    result = _run("train", "audio", "--manifest", manifest, "--task", "regress", "--run-dir", run_dir,
                  "--epochs", 1, "--config", config)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mae=" in result.stdout and (run_dir / "targets.json").is_file()
    metrics = json.loads(_run("evaluate", run_dir, "--manifest", manifest, "--json").stdout.strip())
    assert {"mae", "rmse", "r2", "n"} <= set(metrics) and metrics["n"] == len(rows)
    predicted = _run("predict", run_dir, folder / rows[0]["path"]).stdout.strip().split("\t")
    assert len(predicted) == 2 and float(predicted[1]) == float(predicted[1])  # a finite number


def test_help_and_usage_errors_import_no_tensorflow():
    # `seqapps --help` and a usage error must answer without loading TensorFlow.
    code = ("import sys; from seqapps.cli import main\n"
            "try:\n    main(['train', 'audio', '/no/such/folder', '--run-dir', 'x'])\n"
            "except SystemExit:\n    pass\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules, 'librosa' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout.split() == ["False", "False", "False"], result.stdout + result.stderr
    assert result.stderr.strip() == "seqapps train: error: data folder /no/such/folder does not exist"


def test_commands_print_no_tensorflow_start_up_logs(tmp_path):
    config = tmp_path / "untrained.json"
    config.write_text(json.dumps({"kind": "audio", "num_classes": 2, "model": {"units": 4}}))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    command = [sys.executable, "-m", "seqapps", "diagnose", "--config", str(config), "--out", str(tmp_path / "d")]
    quiet = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert quiet.stderr == ""
    loud = subprocess.run([*command[:3], "--verbose", *command[3:]], capture_output=True, text=True, env=env,
                          timeout=600)
    assert loud.returncode == 0 and loud.stderr != ""  # TensorFlow's own lines, on request
