"""tf.distribute wiring: strategies, one writer, atomic run files, failing fast.

Multi-device and multi-worker runs happen in subprocesses: logical CPU devices and the
multi-worker runtime must be configured before TensorFlow initialises.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqapps import distribute
from seqapps.cli import main
from seqapps.errors import ConfigError
from seqapps.tasks import SequenceClassifier
from seqapps.training import AtomicBackupAndRestore, AtomicCSVLogger, fit

ROOT = Path(__file__).resolve().parents[2]
TINY = {"model": {"units": 8, "dropout": 0.0},
        "training": {"batch_size": 8, "learning_rate": 0.01, "patience": 50}}


def _env(**extra):
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "tensorflow",
            **extra}


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


class _Worker:
    """Stand-in for a MultiWorkerMirroredStrategy seen from task `task_type` `task_id`."""

    def __init__(self, task_type, task_id, jobs):
        cluster = tf.train.ClusterSpec({job: [f"127.0.0.1:{1000 + i}" for i in range(n)] for job, n in jobs.items()})
        self.cluster_resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            cluster, task_type=task_type, task_id=task_id)


# --------------------------------------------------------------------------- choosing
def test_auto_strategy_follows_gpus_and_tf_config():
    two_workers = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}
    assert distribute.resolve_strategy_name("auto", gpus=0, tf_config={}) == "default"
    assert distribute.resolve_strategy_name("auto", gpus=1, tf_config={}) == "default"
    assert distribute.resolve_strategy_name("auto", gpus=2, tf_config={}) == "mirrored"
    assert distribute.resolve_strategy_name("auto", gpus=2, tf_config=two_workers) == "multi-worker"
    one_worker = {"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}
    assert distribute.resolve_strategy_name("auto", gpus=0, tf_config=one_worker) == "default"
    assert distribute.resolve_strategy_name("mirrored", gpus=0, tf_config={}) == "mirrored"
    with pytest.raises(ConfigError, match="strategy='ring'"):
        distribute.resolve_strategy_name("ring")
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        distribute.read_tf_config({"TF_CONFIG": "{cluster"})


def test_chief_is_the_chief_task_else_worker_zero(tmp_path):
    assert distribute.is_chief(tf.distribute.get_strategy())
    assert distribute.is_chief(_Worker("worker", 0, {"worker": 2}))
    assert not distribute.is_chief(_Worker("worker", 1, {"worker": 2}))
    assert distribute.is_chief(_Worker("chief", 0, {"chief": 1, "worker": 2}))
    assert not distribute.is_chief(_Worker("worker", 0, {"chief": 1, "worker": 2}))
    with distribute.worker_run_dir(tmp_path / "run", _Worker("worker", 0, {"worker": 2})) as folder:
        assert folder == tmp_path / "run"
    with distribute.worker_run_dir(tmp_path / "run", _Worker("worker", 1, {"worker": 2})) as folder:
        assert folder != tmp_path / "run" and folder.is_dir()
        (folder / "model.keras").write_text("scratch")
    assert not folder.exists()
    assert not (tmp_path / "run").exists()


def test_global_batch_and_sharding_policy():
    assert distribute.global_batch_and_learning_rate(32, 0.002, replicas=2) == (32, 0.002)
    assert distribute.global_batch_and_learning_rate(32, 0.002, replicas=2, per_replica=True) == (64, 0.004)
    with pytest.raises(ConfigError, match="batch_size=1"):
        distribute.global_batch_and_learning_rate(1, 0.1, replicas=2)
    policy = distribute.shard_by(tf.data.Dataset.range(3), "file").options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.FILE


def test_multi_worker_without_tf_config_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert main(["train", "audio", str(tmp_path), "--run-dir", str(tmp_path / "r"), "--strategy", "multi-worker"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "TF_CONFIG" in err


def test_peer_failure_message_names_the_dead_task():
    error = tf.errors.UnavailableError(None, None, "{{function_node x}} Collective ops is aborted by: The following "
                                       "tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\n"
                                       "The tasks have crashed.")
    message = distribute.peer_failure_message(error, _Worker("worker", 0, {"worker": 2}))
    assert "\n" not in message and "/job:worker/replica:0/task:1 stopped sending heartbeats" in message
    assert distribute.peer_failure_message(error, tf.distribute.get_strategy()) is None
    assert distribute.peer_failure_message(ValueError("x"), _Worker("worker", 0, {"worker": 2})) is None


# --------------------------------------------------------------------------- atomic run files
def test_atomic_csv_logger_matches_keras_csv_logger(tmp_path):
    rows = [{"loss": 0.5, "val_loss": 0.25, "accuracy": 0.75}, {"loss": 0.4, "val_loss": 0.3, "accuracy": 0.8}]
    ours, theirs = AtomicCSVLogger(tmp_path / "ours.csv"), keras.callbacks.CSVLogger(str(tmp_path / "keras.csv"))
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    for callback in (ours, theirs):
        callback.set_model(model)
        callback.on_train_begin()
        for epoch, logs in enumerate(rows):
            callback.on_epoch_end(epoch, dict(logs))
        callback.on_train_end()

    def parsed(path):
        lines = path.read_text().strip().splitlines()
        return lines[0], [[float(v) for v in line.split(",")] for line in lines[1:]]

    assert parsed(tmp_path / "ours.csv") == parsed(tmp_path / "keras.csv")
    assert not list(tmp_path.glob(".*tmp*"))


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


def _toy(n=16):
    rng = np.random.default_rng(0)
    return {"features": rng.standard_normal((n, 5, 3)).astype("float32")}, np.arange(n) % 2


def test_backup_survives_a_kill_during_its_write_where_keras_backup_does_not(tmp_path):
    x, y = _toy()
    model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=4, dropout=0.0)
    model.compile()
    with pytest.raises(KeyboardInterrupt):
        fit(model, (x, y), (x, y), run_dir=tmp_path, epochs=5, verbose=0, extra_callbacks=[_Interrupt(2)])
    backup = tmp_path / "backup"
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2
    # A kill while writing epoch 3 leaves a partial temporary (and, for Keras, a partial file in place).
    (backup / f".tmp-{os.getpid()}-epoch-00003.weights.h5").write_bytes(b"\x89HDF\r\n")
    history = fit(model, (x, y), (x, y), run_dir=tmp_path, epochs=5, verbose=0)
    assert len(history.history["loss"]) == 3  # resumed at epoch 2 of 5
    assert len((tmp_path / "history.csv").read_text().strip().splitlines()) == 1 + 5

    keras_backup = keras.callbacks.BackupAndRestore(str(tmp_path / "keras_backup"))
    (tmp_path / "keras_backup").mkdir()
    (tmp_path / "keras_backup" / "latest.weights.h5").write_bytes(b"\x89HDF\r\n")  # what a kill leaves there
    with pytest.raises(OSError):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_backup])


def test_backup_restores_from_another_folder(tmp_path):
    x, y = _toy()
    model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=4, dropout=0.0)
    model.compile()
    chief = AtomicBackupAndRestore(tmp_path / "chief", delete_checkpoint=False)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[chief])
    other = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=4, dropout=0.0)
    other.compile()
    worker = AtomicBackupAndRestore(tmp_path / "worker", restore_dir=tmp_path / "chief")
    history = other.fit(x, y, epochs=3, verbose=0, callbacks=[worker])
    assert len(history.history["loss"]) == 1  # resumed at epoch 2 from the chief's backup
    assert not (tmp_path / "worker").exists()  # its own backup removed at the end


# --------------------------------------------------------------------------- MirroredStrategy
MIRRORED = textwrap.dedent(
    """
    import os, sys, tempfile
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from seqapps.tasks import SequenceClassifier, SequenceRegressor
    from seqapps.training import TrainingDiverged, fit

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6, 3)).astype("float32")
    mask = np.ones((32, 6), bool); mask[::3, 4:] = False
    labels = (x[:, 0, 0] > 0).astype("int32")
    data = tf.data.Dataset.from_tensor_slices(({"features": x, "mask": mask}, labels)).batch(8)

    def train(strategy, run_dir):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=6, num_layers=2, dropout=0.0)
            model.compile(optimizer=keras.optimizers.SGD(0.2))
        fit(model, data, data, run_dir=run_dir, epochs=3, verbose=0)
        return model.get_weights()

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    first_dir = tempfile.mkdtemp()
    a = train(mirrored, first_dir)
    b = train(tf.distribute.get_strategy(), tempfile.mkdtemp())
    assert any(not np.allclose(w, 0) for w in a)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, atol=1e-5)
    assert len(open(os.path.join(first_dir, "history.csv")).read().strip().splitlines()) == 4
    print("same weights")

    run_dir = tempfile.mkdtemp()
    targets = labels.astype("float32")[:, None]
    with mirrored.scope():
        model = SequenceRegressor(input_shape=(None, 3), units=4, dropout=0.0)
        model.compile(optimizer=keras.optimizers.SGD(0.01))
    good = tf.data.Dataset.from_tensor_slices(({"features": x}, targets)).batch(8)
    fit(model, good, good, run_dir=run_dir, epochs=1, verbose=0)
    best = open(os.path.join(run_dir, "best.keras"), "rb").read()
    bad_targets = targets.copy(); bad_targets[13] = np.nan
    bad = tf.data.Dataset.from_tensor_slices(({"features": x}, bad_targets)).batch(8)
    try:
        fit(model, bad, good, run_dir=run_dir, epochs=3, verbose=0)
    except TrainingDiverged as err:
        print("diverged:", err)
    assert open(os.path.join(run_dir, "best.keras"), "rb").read() == best
    assert not os.path.exists(os.path.join(run_dir, "backup"))
    """
)


def test_mirrored_on_two_logical_cpus_matches_default_and_stops_on_nan(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "same weights" in result.stdout
    assert "diverged: training stopped: the loss became nan at epoch 1, batch 2" in result.stdout


# --------------------------------------------------------------------------- MultiWorkerMirroredStrategy
@pytest.fixture(scope="module")
def audio_set(tmp_path_factory):
    from pipelines.synthetic_audio import write_synthetic_audio

    folder = tmp_path_factory.mktemp("audio")
    write_synthetic_audio(folder, n_per_class=4, seconds=0.5, seed=1)
    config = folder.parent / "tiny.json"
    config.write_text(json.dumps(TINY))
    return folder, config


def _start_workers(audio_set, run_dir, tmp_path, *, epochs, extra=()):
    folder, config = audio_set
    ports = _free_ports(2)
    processes = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        command = [sys.executable, "-m", "seqapps", "train", "audio", str(folder), "--run-dir", str(run_dir),
                   "--epochs", str(epochs), "--config", str(config), "--strategy", "auto", *extra]
        env = _env(TF_CONFIG=_tf_config(ports, index), TMPDIR=str(scratch))
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env=env))
    return processes


def test_two_workers_on_localhost_train_through_the_cli(audio_set, tmp_path):
    run_dir = tmp_path / "run"
    processes = _start_workers(audio_set, run_dir, tmp_path, epochs=1)
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    assert "test: accuracy=" in outputs[0][0] or "validation: accuracy=" in outputs[0][0]
    assert "MultiWorkerMirroredStrategy: 2 replica(s) (worker 1)" in outputs[1][0]
    from seqapps.runs.train import load_run

    model, config = load_run(run_dir)
    assert config["kind"] == "audio" and model.num_classes == 5
    assert len(json.loads((run_dir / "history.json").read_text())["loss"]) == 1
    assert not (run_dir / "backup").exists()
    assert not any((tmp_path / "tmp1").iterdir())  # the worker's temporary run folder is gone


def test_surviving_worker_stops_with_one_line_when_its_peer_dies(audio_set, tmp_path):
    run_dir = tmp_path / "run"
    chief, worker = _start_workers(audio_set, run_dir, tmp_path, epochs=500,
                                   extra=("--heartbeat-timeout", "20", "--collective-timeout", "60"))
    history = run_dir / "history.csv"
    deadline = time.time() + 240
    while time.time() < deadline and chief.poll() is None:
        if history.exists() and len(history.read_text().strip().splitlines()) >= 2:  # training is under way
            break
        time.sleep(0.2)
    if chief.poll() is not None:  # stopped before the kill: show why, from both sides
        worker.kill()
        pytest.fail("chief stopped early:\n" + chief.communicate()[1][-3000:]
                    + "\nworker:\n" + worker.communicate()[1][-3000:])
    worker.send_signal(signal.SIGKILL)
    killed = time.time()
    worker.wait()
    _, err = chief.communicate(timeout=120)  # bounded: heartbeat 20 s; a hang fails here
    print(f"survivor stopped {time.time() - killed:.1f} s after its peer was killed")
    assert chief.returncode == 1, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("seqapps train: error: multi-worker training stopped on worker 0:"), err[-3000:]
    assert "stopped sending heartbeats" in last or "connection to a peer was lost" in last
