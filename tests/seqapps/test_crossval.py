"""Group cross-validation end to end on tiny synthetic speakers (few clips, 1 epoch, 4 units),
and `seqapps train --group-pattern ... --test-dir ...` holding out nothing but val."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from seqapps.cli import main

TINY = {"model": {"units": 4, "dropout": 0.0}, "training": {"batch_size": 16, "patience": 50},
        "data": {"n_mels": 16}}


@pytest.fixture(scope="module")
def speakers(tmp_path_factory):
    from pipelines.synthetic_audio import write_synthetic_audio

    folder = tmp_path_factory.mktemp("speakers")
    write_synthetic_audio(folder, n_per_class=6, seconds=0.3, seed=3, n_groups=3)
    config = folder.parent / "tiny.json"
    config.write_text(json.dumps(TINY))
    return folder, config


def _split_groups(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {name: {r["group"] for r in rows if r["split"] == name} for name in ("train", "val", "test")}


@pytest.mark.slow
def test_folds_write_per_fold_runs_and_a_summary(speakers, tmp_path, capsys):
    folder, config = speakers
    run_dir = tmp_path / "run"
    code = main(["train", "audio", "--manifest", str(folder / "manifest.csv"), "--run-dir", str(run_dir),
                 "--folds", "3", "--epochs", "1", "--config", str(config)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "3-fold group cross-validation" in printed and "hardest groups: speaker_" in printed
    summary = json.loads((run_dir / "cv" / "summary.json").read_text())
    per_fold = [json.loads((run_dir / "cv" / f"fold_{k}" / "metrics.json").read_text())["test"] for k in range(3)]
    accuracies = [m["accuracy"] for m in per_fold]
    assert summary["accuracy"]["per_fold"] == accuracies
    assert summary["accuracy"]["mean"] == pytest.approx(np.mean(accuracies), abs=1e-6)
    assert summary["accuracy"]["std"] == pytest.approx(np.std(accuracies), abs=1e-6)
    assert summary["macro_f1"]["mean"] == pytest.approx(np.mean([m["macro_f1"] for m in per_fold]), abs=1e-6)
    tested = []
    for k in range(3):
        fold = run_dir / "cv" / f"fold_{k}"
        groups = _split_groups(fold / "split.csv")
        assert len(groups["test"]) == 1 and not groups["test"] & (groups["train"] | groups["val"])
        assert groups["val"] and not groups["val"] & groups["train"]  # val by speaker too
        tested += sorted(groups["test"])
        matrix = json.loads((fold / "confusion_matrix.json").read_text())
        assert np.sum(matrix["matrix"]) == per_fold[k]["n"]
        assert (fold / "confusion_matrix.png").stat().st_size > 0
        assert summary["per_fold"][k]["groups"] == sorted(groups["test"])
    assert sorted(tested) == ["speaker_00", "speaker_01", "speaker_02"]
    assert (run_dir / "cv" / "confusion_matrix.png").stat().st_size > 0
    # each group's accuracy is that of its fold (one group per fold); the hardest comes first
    for row in summary["hardest_groups"]:
        assert row["accuracy"] == pytest.approx(accuracies[row["fold"]])
    assert [r["accuracy"] for r in summary["hardest_groups"]] == sorted(accuracies)


def test_folds_refuse_sources_without_groups(speakers, tmp_path, capsys):
    folder, config = speakers
    code = main(["train", "audio", str(folder), "--run-dir", str(tmp_path / "r"), "--folds", "2",
                 "--epochs", "1", "--config", str(config)])
    assert code == 2
    assert "--folds needs groups" in capsys.readouterr().err


@pytest.mark.slow
def test_group_pattern_and_separate_test_dir_keep_every_training_speaker(tmp_path, capsys):
    import soundfile

    from pipelines.synthetic_audio import synthesize_clip

    rng = np.random.default_rng(0)
    for root, speakers in (("train", ["ann", "bob", "cid", "dan"]), ("test", ["eve"])):
        for label in ("rising_chirp", "pulse_train"):
            (tmp_path / root / label).mkdir(parents=True)
            for speaker in speakers:
                for n in range(2):
                    clip = synthesize_clip(label, seconds=0.3, rng=rng)
                    soundfile.write(tmp_path / root / label / f"{label[0]}_{speaker}_{n}.wav", clip, 16000)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    run_dir = tmp_path / "run"
    code = main(["train", "audio", str(tmp_path / "train"), "--test-dir", str(tmp_path / "test"),
                 "--group-pattern", "digits", "--run-dir", str(run_dir), "--epochs", "1", "--config", str(config)])
    assert code == 0, capsys.readouterr().err
    groups = _split_groups(run_dir / "split.csv")
    assert groups["test"] == {"eve"}
    assert groups["train"] | groups["val"] == {"ann", "bob", "cid", "dan"}
    assert len(groups["val"]) == 1 and not groups["train"] & groups["val"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data"]["test"] == 4 and metrics["data"]["train"] + metrics["data"]["val"] == 16


@pytest.mark.slow
def test_train_with_every_new_setting_then_export_and_predict(speakers, tmp_path, capsys):
    """Background noise from DATA_DIR/_background_noise_ (not a class), MFCC + deltas + CMVN,
    centring, gain/shift/speed, bidirectional, cosine schedule, label smoothing."""
    import shutil

    import soundfile

    folder, _ = speakers
    data = tmp_path / "data"
    shutil.copytree(folder, data, ignore=shutil.ignore_patterns("*.csv"))
    (data / "_background_noise_").mkdir()
    soundfile.write(data / "_background_noise_" / "hum.wav",
                    0.1 * np.sin(np.arange(16000) * 0.05).astype("float32"), 16000)
    config = tmp_path / "all.json"
    config.write_text(json.dumps({
        "data": {"features": "mfcc", "n_mels": 16, "n_mfcc": 8, "deltas": 2, "normalization": "utterance",
                 "placement": "centre", "fmax": 9000.0},
        "augmentation": {"noise_dir": "auto", "gain_db": 6.0, "time_shift_seconds": 0.05, "speed": [0.9, 1.1]},
        "model": {"units": 4, "bidirectional": True, "spec_augment": {"freq_mask_width": 2}},
        "training": {"batch_size": 16, "lr_schedule": "cosine", "warmup_epochs": 1, "label_smoothing": 0.1},
    }))
    run_dir = tmp_path / "run"
    with pytest.warns(UserWarning, match="Nyquist"):
        code = main(["train", "audio", str(data), "--run-dir", str(run_dir), "--epochs", "2", "--config", str(config)])
    assert code == 0, capsys.readouterr().err
    labels = json.loads((run_dir / "labels.json").read_text())
    assert "_background_noise_" not in labels and len(labels) == 5
    history = json.loads((run_dir / "history.json").read_text())
    assert history["learning_rate"][0] == pytest.approx(0.002)  # warm-up epoch 1 of 1, then cosine
    assert history["learning_rate"][1] == pytest.approx(0.002)
    assert main(["export", str(run_dir), "--name", "all", "--base-dir", str(tmp_path / "saved")]) == 0
    clip = next((data / labels[0]).glob("*.wav"))
    capsys.readouterr()
    assert main(["predict", str(run_dir), str(clip), "--json"]) == 0
    from_run = json.loads(capsys.readouterr().out)
    assert main(["predict", str(tmp_path / "saved" / "all"), str(clip), "--json"]) == 0
    from_export = json.loads(capsys.readouterr().out)
    assert from_run["label"] == from_export["label"]
    assert from_run["probability"] == pytest.approx(from_export["probability"], abs=1e-4)
