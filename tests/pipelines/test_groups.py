"""Speaker-aware data handling: groups from file names, train/test-only split columns,
separate test sets and group folds (no group ever on both sides)."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.groups import group_folds, groups_from_names, with_test_set
from pipelines.sources import DataSource, Example, from_directory, split_examples
from seqapps.errors import ConfigError


def _fsdd_like(tmp_path, speakers=("jackson", "nicolas", "theo", "yweweler", "george", "lucas"), n=3):
    for digit in ("0", "1", "2"):
        (tmp_path / digit).mkdir()
        for speaker in speakers:
            for i in range(n):
                (tmp_path / digit / f"{digit}_{speaker}_{i}.wav").write_bytes(b"RIFF....")
    return from_directory(tmp_path, extensions=(".wav",))


def test_digits_preset_and_an_equivalent_regex_give_the_speakers(tmp_path):
    source = _fsdd_like(tmp_path)
    preset = groups_from_names(source, "digits")
    regex = groups_from_names(source, r"^\d+_(?P<group>[a-z]+)_\d+$")
    assert [e.group for e in preset.examples] == [e.group for e in regex.examples]
    assert sorted({e.group for e in preset.examples}) == sorted(
        ["jackson", "nicolas", "theo", "yweweler", "george", "lucas"])
    for example in preset.examples:  # the speaker is the middle part of the name
        assert example.path.rsplit("/", 1)[1].split("_")[1] == example.group


def test_speech_commands_preset_keeps_manifest_groups():
    examples = [Example("/d/yes/0a7c2a8d_nohash_0.wav", "yes", None, None, None),
                Example("/d/yes/0a7c2a8d_nohash_1.wav", "yes", None, None, None),
                Example("/d/no/c1d39ce8_nohash_3.wav", "no", None, "given", None)]
    source = groups_from_names(DataSource(examples, ["no", "yes"], None, "classify"), "speech_commands")
    assert [e.group for e in source.examples] == ["0a7c2a8d", "0a7c2a8d", "given"]


def test_bad_patterns_and_unmatched_names_are_clear_errors(tmp_path):
    source = _fsdd_like(tmp_path)
    with pytest.raises(ConfigError, match=r"`group_pattern`.*\(\?P<group>"):
        groups_from_names(source, r"(\d+)_")
    with pytest.raises(ConfigError, match="`group_pattern`"):
        groups_from_names(source, r"(?P<group>[")
    with pytest.raises(ConfigError, match=r"54 of 54 file names do not match --group-pattern 'speech_commands'"):
        groups_from_names(source, "speech_commands")


def _source_with_split(splits):
    examples = [Example(f"/{i}.wav", "ab"[i % 2], None, f"speaker{i // 4}", splits[i // 4])
                for i in range(4 * len(splits))]
    return DataSource(examples, ["a", "b"], None, "classify")


def test_train_test_split_column_gets_val_carved_out_of_train_by_speaker():
    source = _source_with_split(["train"] * 5 + ["test"])  # 6 speakers, the official test is one
    split = split_examples(source, val_fraction=0.15, test_fraction=0.15, seed=0)
    assert split["test"] == list(range(20, 24))  # the given test set, nothing more
    assert split["val"] and split["train"]
    groups = {name: {source.examples[i].group for i in idx} for name, idx in split.items()}
    assert not groups["train"] & groups["val"] and len(groups["val"]) == 1
    assert sorted(split["train"] + split["val"]) == list(range(20))  # all of train is used
    # a full train/val/test column is still used as given
    full = _source_with_split(["train"] * 4 + ["val", "test"])
    assert split_examples(full)["val"] == list(range(16, 20))


def test_separate_test_set_holds_out_nothing_more_than_val():
    train = _source_with_split([None] * 6)
    test = DataSource([Example(f"/t{i}.wav", "ab"[i % 2], None, "new", None) for i in range(4)],
                      ["a", "b"], None, "classify")
    joined = with_test_set(train, test)
    split = split_examples(joined, val_fraction=0.15, test_fraction=0.15)
    assert split["test"] == list(range(24, 28))
    assert len(split["train"]) + len(split["val"]) == 24
    bad = DataSource([Example("/t.wav", "c", None, None, None)], ["c"], None, "classify")
    with pytest.raises(ConfigError, match="test labels not in the training set: c"):
        with_test_set(train, bad)
    with pytest.raises(ConfigError, match="names a test set"):
        with_test_set(_source_with_split(["train", "test"]), test)


@pytest.mark.parametrize("task", ["classify", "regress"])
def test_group_folds_cover_every_example_once_and_never_split_a_group(task):
    rng = np.random.default_rng(0)
    examples = [Example(f"/{i}.wav", "abc"[i % 3] if task == "classify" else None,
                        None if task == "classify" else (float(rng.normal()),), f"g{i % 7}", None)
                for i in range(70)]
    source = DataSource(examples, ["a", "b", "c"] if task == "classify" else None,
                        None if task == "classify" else ["y"], task)
    folds = group_folds(source, folds=3, seed=1)
    assert len(folds) == 3
    assert sorted(np.concatenate(folds).tolist()) == list(range(70))
    fold_groups = [{examples[i].group for i in fold} for fold in folds]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not fold_groups[a] & fold_groups[b]
    with pytest.raises(ConfigError, match=r"`folds` must be an integer in \[2, 7\]"):
        group_folds(source, folds=8)
