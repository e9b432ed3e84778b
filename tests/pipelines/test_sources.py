"""Tests of pipelines/sources.py: folders, manifests, group-aware splits, saved splits."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
import pytest

from pipelines.report import BadInputReport
from pipelines.sources import (
    DataSource,
    Example,
    from_directory,
    from_manifest,
    read_split,
    split_examples,
    write_split,
)
from seqapps.errors import BadMediaError, ConfigError


def touch(path: Path, content: bytes = b"RIFF") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- folders


@pytest.fixture
def class_tree(tmp_path):
    root = tmp_path / "data"
    touch(root / "b" / "x.wav")
    touch(root / "a" / "y.WAV")
    touch(root / "a" / "sub" / "z.wav")
    touch(root / "a" / "notes.txt")
    touch(root / "a" / ".hidden.wav")
    touch(root / "top.wav")               # not in a class folder: ignored
    touch(root / ".cache" / "w.wav")      # hidden folder: not a class
    (root / "c").mkdir()                  # a class without files
    touch(root / "a" / "empty.wav", b"")  # 0 bytes: reported
    return root


def test_from_directory_classes_files_and_labels(class_tree):
    report = BadInputReport()
    source = from_directory(class_tree, extensions=("wav",), report=report)
    assert source.task == "classify" and source.target_names is None
    assert source.class_names == ["a", "b", "c"]
    assert source.paths == [str(class_tree / "a" / "y.WAV"), str(class_tree / "a" / "sub" / "z.wav"),
                            str(class_tree / "b" / "x.wav")]
    assert all(os.path.isabs(p) for p in source.paths)
    assert [e.label for e in source.examples] == ["a", "a", "b"]
    assert source.labels_as_ids().tolist() == [0, 0, 1]
    assert source.labels_as_ids().dtype == np.int32
    assert all(e.group is None and e.split is None and e.targets is None
               for e in source.examples)
    assert [(Path(e["path"]).name, e["reason"]) for e in report.entries] == [
        ("empty.wav", "empty file (0 bytes)")]


def test_from_directory_strict_report_raises_and_so_does_no_report(class_tree):
    # One meaning of report=None in pipelines (issue 15): strict, as in decoding. Before,
    # sources alone skipped the file with a warning.
    with pytest.raises(BadMediaError, match=r"empty\.wav: empty file"):
        from_directory(class_tree, extensions=(".wav",), report=BadInputReport(strict=True))
    with pytest.raises(BadMediaError, match=r"empty\.wav: empty file"):
        from_directory(class_tree, extensions=(".wav",))


def test_from_directory_errors_name_the_folder(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=f"data folder {re.escape(str(missing))} does not exist"):
        from_directory(missing, extensions=(".wav",))
    a_file = touch(tmp_path / "file.wav")
    with pytest.raises(ConfigError, match=f"{re.escape(str(a_file))} is not a folder"):
        from_directory(a_file, extensions=(".wav",))
    flat = tmp_path / "flat"
    touch(flat / "a.wav")
    with pytest.raises(ConfigError, match=f"{re.escape(str(flat))} has no class sub-folders"):
        from_directory(flat, extensions=(".wav",))
    wrong = tmp_path / "wrong"
    touch(wrong / "cls" / "a.mp4")
    with pytest.raises(ConfigError, match=f"no audio files found under {re.escape(str(wrong))}"):
        from_directory(wrong, extensions=(".wav", ".flac"), kind="audio")
    with pytest.raises(ConfigError, match="`extensions` must be a non-empty tuple"):
        from_directory(wrong, extensions=".wav")


def test_from_directory_on_real_clips(shared_data):
    source = from_directory(shared_data / "audio" / "speech_music_silence", extensions=(".wav",))
    assert source.class_names == ["music", "silence", "speech"]
    assert np.bincount(source.labels_as_ids()).tolist() == [40, 40, 40]


# --------------------------------------------------------------------------- manifests


def test_from_manifest_resolves_relative_paths_against_its_folder(tmp_path, monkeypatch):
    a = touch(tmp_path / "media" / "a.wav")
    b = touch(tmp_path / "elsewhere" / "b.wav")
    manifest = write_csv(tmp_path / "lists" / "m.csv",
                         "path,label,group,split\n"
                         "../media/a.wav,dog,spk1,train\n"
                         f"{b},cat,,Test\n")
    monkeypatch.chdir(tmp_path / "media")  # the working folder must not matter
    source = from_manifest(manifest)
    assert source.examples == [Example(str(a), "dog", None, "spk1", "train"),
                               Example(str(b), "cat", None, None, "test")]
    assert source.class_names == ["cat", "dog"]
    assert source.labels_as_ids().tolist() == [1, 0]


def test_from_manifest_bad_rows_go_to_the_report_with_line_numbers(tmp_path):
    touch(tmp_path / "a.wav")
    manifest = write_csv(tmp_path / "m.csv",
                         "path,label\n"
                         "a.wav,dog\n"
                         "missing.wav,dog\n"
                         "\n"
                         "a.wav,\n")
    report = BadInputReport()
    source = from_manifest(manifest, report=report)
    assert len(source) == 1
    assert report.entries == [
        {"path": str(tmp_path / "missing.wav"),
         "reason": f"file not found (manifest {manifest} line 3)"},
        {"path": str(tmp_path / "a.wav"), "reason": f"missing label (manifest {manifest} line 5)"},
    ]
    with pytest.raises(BadMediaError, match=r"missing\.wav: file not found \(manifest .* line 3\)"):
        from_manifest(manifest, report=BadInputReport(strict=True))
    with pytest.raises(BadMediaError, match=r"missing\.wav: file not found \(manifest .* line 3\)"):
        from_manifest(manifest)  # no report: strict, as everywhere in pipelines


def test_from_manifest_regression_single_and_several_targets(tmp_path):
    touch(tmp_path / "a.wav")
    touch(tmp_path / "b.wav")
    manifest = write_csv(tmp_path / "m.csv", "\ufeffpath, label, valence, arousal\n"
                                             "a.wav, 0.5, 1, -2\nb.wav, -3e-1, 0.25, 4\n")
    source = from_manifest(manifest, task="regress")  # BOM and spaces are tolerated
    assert source.target_names == ["label"] and source.class_names is None
    np.testing.assert_array_equal(source.targets_array(), np.array([[0.5], [-0.3]], np.float32))
    several = from_manifest(manifest, task="regress", target_columns=["valence", "arousal"])
    assert several.targets_array().dtype == np.float32
    np.testing.assert_array_equal(several.targets_array(), [[1, -2], [0.25, 4]])
    with pytest.raises(ConfigError, match="labels_as_ids needs a classification source"):
        several.labels_as_ids()


@pytest.mark.parametrize("text,pattern", [
    ("path,label,split\na.wav,dog,train\na.wav,dog,training\n",
     r"{m} line 3: `split` must be one of train, val, test or empty. Received: 'training'"),
    ("path,group\na.wav,g\n", r"{m} line 1: missing column\(s\) label; header is path,group"),
    ("file,label\na.wav,dog\n", r"{m} line 1: missing column\(s\) path"),
    ("", r"manifest {m} is empty"),
    ("path,label\nmissing.wav,dog\n", r"manifest {m} has no usable rows \(1 recorded as bad\)"),
])
def test_from_manifest_config_errors_name_file_line_and_value(tmp_path, text, pattern):
    touch(tmp_path / "a.wav")
    manifest = write_csv(tmp_path / "m.csv", text)
    with pytest.raises(ConfigError, match=pattern.format(m=re.escape(str(manifest)))):
        from_manifest(manifest, report=BadInputReport())


@pytest.mark.parametrize("value", ["loud", "nan", "inf"])
def test_from_manifest_non_numeric_regression_label(tmp_path, value):
    touch(tmp_path / "a.wav")
    manifest = write_csv(tmp_path / "m.csv", f"path,label\na.wav,1.0\na.wav,{value}\n")
    with pytest.raises(ConfigError, match=f"{re.escape(str(manifest))} line 3: column `label` "
                                          f"must be a finite number for regression. "
                                          f"Received: '{value}'"):
        from_manifest(manifest, task="regress")


def test_from_manifest_argument_errors(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "path,label\n")
    with pytest.raises(ConfigError, match="`task` must be one of \"classify\", \"regress\". "
                                          "Received: task='segment'"):
        from_manifest(manifest, task="segment")
    with pytest.raises(ConfigError, match="`target_columns` must be None unless"):
        from_manifest(manifest, target_columns=["x"])
    with pytest.raises(ConfigError, match="`target_columns` must be a non-empty list"):
        from_manifest(manifest, task="regress", target_columns="x")
    with pytest.raises(ConfigError, match=r"line 1: missing column\(s\) x, y"):
        from_manifest(manifest, task="regress", target_columns=["x", "y"])
    with pytest.raises(ConfigError, match="manifest .*nope.csv does not exist"):
        from_manifest(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- splits


def random_source(rng, *, task="classify") -> DataSource:
    n = int(rng.integers(20, 90))
    n_groups = int(rng.integers(3, 25))
    n_classes = int(rng.integers(2, 5))
    examples = []
    for i in range(n):
        group = None if rng.random() < 0.2 else f"g{rng.integers(n_groups)}"
        if task == "classify":
            examples.append(Example(f"/d/{i}.wav", f"c{rng.integers(n_classes)}", None, group, None))
        else:
            examples.append(Example(f"/d/{i}.wav", None, (float(rng.normal()),), group, None))
    if task == "classify":
        names = sorted({e.label for e in examples})
        return DataSource(examples, names, None, "classify")
    return DataSource(examples, None, ["y"], "regress")


@pytest.mark.parametrize("task", ["classify", "regress"])
def test_split_examples_group_invariants_over_many_seeds(task):
    for seed in range(25):
        source = random_source(np.random.default_rng(seed), task=task)
        split = split_examples(source, seed=seed)
        assert split == split_examples(source, seed=seed)  # reproducible
        everything = sorted(i for part in split.values() for i in part)
        assert everything == list(range(len(source)))  # a partition
        for name, indices in split.items():
            assert indices == sorted(indices), name
        group_splits = {}
        for name, indices in split.items():
            for i in indices:
                group = source.examples[i].group
                if group is not None:
                    group_splits.setdefault(group, set()).add(name)
        assert all(len(s) == 1 for s in group_splits.values()), group_splits
        assert split["train"], "train is never empty"
        if task == "classify":
            train_labels = {source.examples[i].label for i in split["train"]}
            assert train_labels == set(source.class_names)


def test_split_examples_seed_changes_the_split_and_fractions_are_roughly_kept():
    examples = [Example(f"/d/{i}.wav", "ab"[i % 2], None, None, None) for i in range(200)]
    source = DataSource(examples, ["a", "b"], None, "classify")
    splits = [split_examples(source, seed=seed) for seed in range(4)]
    assert len({tuple(s["test"]) for s in splits}) > 1
    for split in splits:
        assert 20 <= len(split["test"]) <= 40 and 20 <= len(split["val"]) <= 40
        labels = source.labels_as_ids()
        for part in split.values():  # stratified: both classes about equally present
            assert abs(np.mean(labels[part]) - 0.5) < 0.1
    none_held = split_examples(source, val_fraction=0, test_fraction=0)
    assert none_held == {"train": list(range(200)), "val": [], "test": []}


def test_split_examples_uses_given_splits_and_rejects_partial_ones():
    given = ["train", "test", "val", "train"]
    examples = [Example(f"/d/{i}.wav", "a", None, "same", s) for i, s in enumerate(given)]
    source = DataSource(examples, ["a"], None, "classify")
    assert split_examples(source, seed=5) == {"train": [0, 3], "val": [2], "test": [1]}
    partial = DataSource(examples[:2] + [Example("/d/x.wav", "a", None, None, None)],
                         ["a"], None, "classify")
    with pytest.raises(ConfigError, match="a split is given for 2 of 3 examples"):
        split_examples(partial)


@pytest.mark.parametrize("kwargs,message", [
    ({"val_fraction": -0.1}, r"`val_fraction` must be a number in \[0, 1\). Received: val_fraction=-0.1"),
    ({"test_fraction": 1.0}, r"`test_fraction` must be a number in \[0, 1\)"),
    ({"val_fraction": 0.6, "test_fraction": 0.5}, r"`val_fraction \+ test_fraction` must be less than 1"),
])
def test_split_examples_rejects_bad_fractions(kwargs, message):
    source = DataSource([Example("/a.wav", "a", None, None, None)], ["a"], None, "classify")
    with pytest.raises(ConfigError, match=message):
        split_examples(source, **kwargs)


def test_write_and_read_split_round_trip_classification(tmp_path):
    paths = [touch(tmp_path / "media" / f"{i}.wav") for i in range(12)]
    examples = [Example(str(p), "xy"[i % 2], None, f"g{i // 3}", None) for i, p in enumerate(paths)]
    source = DataSource(examples, ["x", "y"], None, "classify")
    split = split_examples(source, seed=3)
    out = tmp_path / "runs" / "split.csv"
    out.parent.mkdir()
    write_split(out, source, split)
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "label", "group", "split"]
    assert rows[1][0] == str(paths[split["train"][0]])
    back = read_split(out)
    assert all(e.split is not None for e in back.examples)
    by_path = {e.path: e for e in back.examples}
    for name, indices in split.items():
        for i in indices:
            assert by_path[examples[i].path] == Example(examples[i].path, examples[i].label,
                                                        None, examples[i].group, name)
    again = split_examples(back)
    assert {n: sorted(back.examples[i].path for i in idx) for n, idx in again.items()} == \
           {n: sorted(examples[i].path for i in idx) for n, idx in split.items()}


def test_write_and_read_split_round_trip_regression(tmp_path):
    paths = [touch(tmp_path / f"{i}.wav") for i in range(3)]
    examples = [Example(str(p), None, (0.1 * i, -float(i)), None, None) for i, p in enumerate(paths)]
    source = DataSource(examples, None, ["valence", "arousal"], "regress")
    write_split(tmp_path / "s.csv", source, {"train": [2, 0], "test": [1]})
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == \
        "path,label,group,split,target:valence,target:arousal"
    back = read_split(tmp_path / "s.csv")
    assert back.task == "regress" and back.target_names == ["valence", "arousal"]
    assert [e.split for e in back.examples] == ["train", "train", "test"]
    np.testing.assert_array_equal(back.targets_array(),
                                  np.array([[0.0, -0.0], [0.2, -2.0], [0.1, -1.0]], np.float32))


def test_write_and_read_split_errors(tmp_path):
    source = DataSource([Example("/a.wav", "a", None, None, None)], ["a"], None, "classify")
    with pytest.raises(ConfigError, match=r"`split\['train'\]` must be distinct indices in \[0, 1\)"):
        write_split(tmp_path / "s.csv", source, {"train": [0, 1]})
    with pytest.raises(ConfigError, match="`split` must be a dict with keys among train, val, test"):
        write_split(tmp_path / "s.csv", source, {"training": [0]})
    touch(tmp_path / "a.wav")
    no_split = write_csv(tmp_path / "n.csv", "path,label,group,split\na.wav,a,,\n")
    with pytest.raises(ConfigError, match=f"split file {re.escape(str(no_split))}: 1 rows have no split"):
        read_split(no_split)
    with pytest.raises(ConfigError, match="split file .*gone.csv does not exist"):
        read_split(tmp_path / "gone.csv")


def test_split_of_a_small_folder_with_few_examples_per_class():
    """6 examples per class and no groups: fewer members than round(1 / 0.15) folds."""
    examples = [Example(f"/{c}{i}.wav", c, None, None, None) for c in "abcde" for i in range(6)]
    split = split_examples(DataSource(examples, list("abcde"), None, "classify"), seed=0)
    assert sorted(sum(split.values(), [])) == list(range(30))
    assert split["val"] and split["test"]
    assert {examples[i].label for i in split["train"]} == set("abcde")
