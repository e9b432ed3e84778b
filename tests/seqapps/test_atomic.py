"""seqapps.atomic: files and folders appear whole or not at all."""

from __future__ import annotations

import os

import pytest

from seqapps.atomic import (
    atomic_dir,
    atomic_path,
    remove_stale_temporaries,
    temporary_owner,
    temporary_path,
    write_json,
)


def test_atomic_dir_publishes_the_whole_folder_only_on_success(tmp_path):
    target = tmp_path / "out" / "cache"
    with atomic_dir(target) as tmp:
        assert tmp.parent == target.parent and tmp.is_dir() and not target.exists()
        (tmp / "a.txt").write_text("1")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("2")
    assert (target / "a.txt").read_text() == "1" and (target / "sub" / "b.txt").read_text() == "2"
    assert sorted(p.name for p in target.parent.iterdir()) == ["cache"]

    with pytest.raises(ValueError):
        with atomic_dir(tmp_path / "failed") as tmp:
            (tmp / "half.txt").write_text("half")
            raise ValueError("the writer failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_dir_over_an_existing_folder_keeps_or_replaces_it(tmp_path):
    target = tmp_path / "cache"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target, keep_existing=lambda path: (path / "old.txt").is_file()) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    with atomic_dir(target) as tmp:  # no keep_existing: the new folder replaces it
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # the old one is gone


def test_temporary_names_keep_the_suffix_and_name_their_writer(tmp_path):
    first, second = temporary_path(tmp_path / "epoch-3.weights.h5"), temporary_path(tmp_path / "epoch-3.weights.h5")
    assert first != second and first.name.endswith("-epoch-3.weights.h5") and first.name.startswith(".")
    assert temporary_owner(first) == os.getpid()
    assert temporary_owner(tmp_path / "epoch-3.weights.h5") is None
    with atomic_path(tmp_path / "m.json") as tmp:
        assert tmp.suffix == ".json"
        tmp.write_text("{}")
    assert (tmp_path / "m.json").read_text() == "{}"
    write_json(tmp_path / "m.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_remove_stale_temporaries_spares_live_writers(tmp_path):
    dead = tmp_path / ".tmp-999999999-deadbeef-cache"
    dead.mkdir()
    (dead / "x").write_text("left by a killed run")
    dead_file = tmp_path / ".tmp-999999999-deadbeef-m.json"
    dead_file.write_text("{")
    live = temporary_path(tmp_path / "cache")
    live.mkdir()
    unrelated = tmp_path / ".tmp-notapid-cache"
    unrelated.mkdir()
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted([dead.name, dead_file.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, unrelated.name])
