"""pipelines.cache: content key, temporary folder, atomic rename, stale cleanup, manifest.

References are what the file system shows (folders, files, their contents) and a real
SIGKILL of a writing process, not the module's own bookkeeping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from pipelines import cache
from pipelines.cache import MANIFEST, building, content_key, lookup

LAYOUT = ("test-layout", 1)


def _files(folder, sizes=(3, 5)):
    paths = []
    for i, size in enumerate(sizes):
        paths.append(folder / f"clip{i}.bin")
        paths[-1].write_bytes(b"x" * size)
    return paths


def _build_or_reuse(parent, paths, settings, *, calls):
    """One 'run' of a cache user: reuse a trusted cache, else write one (counted)."""
    key = content_key(paths, settings=settings)
    name = f"demo-{key}"
    manifest = lookup(parent, name, key=key, layout=LAYOUT)
    if manifest is not None:
        return parent / name, manifest
    calls.append(key)
    with building(parent, name, key=key, layout=LAYOUT) as build:
        (build.folder / "shard-0.bin").write_bytes(b"".join(p.read_bytes() for p in paths))
        build.manifest = {"shards": ["shard-0.bin"], "clips": len(paths)}
    return parent / name, build.manifest


def test_key_changes_with_settings_files_and_extra_and_only_then(tmp_path):
    paths = _files(tmp_path)
    key = content_key(paths, settings={"rate": 16000})
    assert content_key(paths, settings={"rate": 16000}) == key
    assert content_key(list(reversed(paths)), settings={"rate": 16000}) != key
    assert content_key(paths, settings={"rate": 8000}) != key
    assert content_key(paths, settings={"rate": 16000}, extra={"layer": "a"}) != key
    assert content_key(paths[:1], settings={"rate": 16000}) != key
    # Same size, new modification time: a new key (the content may differ).
    stat = os.stat(paths[0])
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = content_key(paths, settings={"rate": 16000})
    assert changed != key
    paths[0].write_bytes(b"x" * 4)  # another size
    assert content_key(paths, settings={"rate": 16000}) not in (key, changed)
    # A missing file still has a key (and a different one), so a build can report it.
    paths[1].unlink()
    assert content_key(paths, settings={"rate": 16000}) not in (key, changed)


def test_second_run_reuses_the_cache_and_a_change_rebuilds(tmp_path):
    parent, calls = tmp_path / "cache", []
    paths = _files(tmp_path)
    folder, manifest = _build_or_reuse(parent, paths, {"rate": 1}, calls=calls)
    assert len(calls) == 1 and (folder / "shard-0.bin").read_bytes() == b"x" * 8
    written = json.loads((folder / MANIFEST).read_text())
    assert written["key"] == calls[0] and written["layout"] == list(LAYOUT)
    assert written["clips"] == 2 and manifest == written
    again, _ = _build_or_reuse(parent, paths, {"rate": 1}, calls=calls)
    assert again == folder and len(calls) == 1
    _build_or_reuse(parent, paths, {"rate": 2}, calls=calls)
    assert len(calls) == 2
    assert sorted(p.name for p in parent.iterdir()) == sorted(f"demo-{k}" for k in calls)


def test_lookup_trusts_only_a_complete_manifest_of_this_key_and_layout(tmp_path):
    parent, calls = tmp_path / "cache", []
    paths = _files(tmp_path)
    folder, _ = _build_or_reuse(parent, paths, {}, calls=calls)
    key = calls[0]
    assert lookup(parent, folder.name, key=key, layout=LAYOUT) is not None
    assert lookup(parent, folder.name, key="other", layout=LAYOUT) is None
    assert lookup(parent, folder.name, key=key, layout=("test-layout", 2)) is None
    (folder / "shard-0.bin").unlink()  # a shard gone: not trusted, rebuilt
    assert lookup(parent, folder.name, key=key, layout=LAYOUT) is None
    _build_or_reuse(parent, paths, {}, calls=calls)
    assert len(calls) == 2 and (folder / "shard-0.bin").is_file()
    (folder / MANIFEST).write_text("{not json")
    assert lookup(parent, folder.name, key=key, layout=LAYOUT) is None


def test_an_error_inside_the_build_publishes_nothing_and_leaves_no_temporary(tmp_path):
    parent = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        with building(parent, "demo-1", key="1", layout=LAYOUT) as build:
            (build.folder / "shard-0.bin").write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(parent.iterdir()) == []
    with pytest.raises(RuntimeError, match="no manifest"):
        with building(parent, "demo-1", key="1", layout=LAYOUT):
            pass
    assert list(parent.iterdir()) == []


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pipelines.cache import building
    with building(sys.argv[1], "demo-k", key="k", layout=("test-layout", 1)) as build:
        (build.folder / "shard-0.bin").write_bytes(b"half a shard")
        os.kill(os.getpid(), signal.SIGKILL)   # no cleanup code runs after this
    """
)


def test_a_killed_writer_leaves_no_half_cache_and_its_leftover_is_cleaned_next_time(tmp_path):
    parent = tmp_path / "cache"
    parent.mkdir()
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(parent)], env=env,
                          capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr.decode()
    leftovers = list(parent.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".tmp-")
    assert lookup(parent, "demo-k", key="k", layout=LAYOUT) is None
    # A temporary of a process that still runs is someone's build in progress: kept.
    live = parent / f".tmp-{os.getpid()}-cafe0001-demo-k"
    live.mkdir()
    calls = []
    for _ in range(2):
        if lookup(parent, "demo-k", key="k", layout=LAYOUT) is None:
            calls.append(1)
            with building(parent, "demo-k", key="k", layout=LAYOUT) as build:
                (build.folder / "shard-0.bin").write_bytes(b"whole")
                build.manifest = {"shards": ["shard-0.bin"]}
    assert calls == [1]
    assert sorted(p.name for p in parent.iterdir()) == sorted(["demo-k", live.name])
    assert (parent / "demo-k" / "shard-0.bin").read_bytes() == b"whole"


def test_a_cache_published_meanwhile_is_kept_and_an_untrusted_one_replaced(tmp_path):
    parent = tmp_path / "cache"
    with building(parent, "demo-k", key="k", layout=LAYOUT) as build:
        (build.folder / "shard-0.bin").write_bytes(b"ours")
        build.manifest = {"shards": ["shard-0.bin"]}
        # Another run finishes the same cache while we write.
        with building(parent, "demo-k", key="k", layout=LAYOUT) as other:
            (other.folder / "shard-0.bin").write_bytes(b"theirs")
            other.manifest = {"shards": ["shard-0.bin"]}
    assert (parent / "demo-k" / "shard-0.bin").read_bytes() == b"theirs"
    # A final-looking folder without a manifest (not written by `building`) is replaced.
    stray = parent / "demo-j"
    stray.mkdir()
    (stray / "shard-0.bin").write_bytes(b"garbage")
    with building(parent, "demo-j", key="j", layout=LAYOUT) as build:
        (build.folder / "shard-0.bin").write_bytes(b"good")
        build.manifest = {"shards": ["shard-0.bin"]}
    assert (stray / "shard-0.bin").read_bytes() == b"good"
    assert lookup(parent, "demo-j", key="j", layout=LAYOUT) is not None
    assert sorted(p.name for p in parent.iterdir()) == ["demo-j", "demo-k"]


def test_file_fingerprints_name_missing_files():
    missing = f"/nonexistent/{time.time_ns()}.wav"
    assert cache.file_fingerprints([missing]) == [[missing, None, None]]


def test_one_read_manifest_and_the_frame_cache_reader_names_a_folder_without_one(tmp_path):
    from pipelines import frame_cache, frame_cache_reader
    from seqapps.errors import ConfigError

    assert frame_cache.read_manifest is frame_cache_reader.read_manifest is cache.read_manifest
    empty = tmp_path / "not-a-cache"
    empty.mkdir()
    assert cache.read_manifest(empty) is None
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / MANIFEST).write_text("{not json")
    assert cache.read_manifest(tmp_path / "broken") is None
    for folder in (empty, tmp_path / "broken"):
        with pytest.raises(ConfigError, match=rf"`cache_dir` must be a frame cache folder with a readable "
                                              rf"manifest.json. Received: cache_dir='{folder}'"):
            frame_cache_reader.read_cached_clips(folder)
        with pytest.raises(ConfigError, match="`cache_dir` must be a frame cache folder"):
            frame_cache_reader.read_frame_cache(folder, window_frames=4, hop_frames=2, batch_size=2)
