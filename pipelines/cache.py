"""The one cache mechanism of the pipelines (decoded audio, frame features).

A cache is a folder `parent/NAME` holding data files and `manifest.json`:

- **content key**: `content_key` hashes the source files (absolute path, size, mtime)
  and the settings that shape the content, so any change gives a new folder and an old
  one is never trusted for new content;
- **temporary folder, atomic rename**: `building` writes into a fresh temporary folder
  (`seqapps.atomic.atomic_dir`) and renames it into place only when complete, with the
  manifest written last: a killed run never leaves a folder that looks finished;
- **stale-temp cleanup**: the leftovers of killed runs (their writer's process is gone)
  are removed when the next cache is built beside them;
- **one manifest format**: JSON with `key`, `layout` (the layout's name and version,
  bumped when the record layout changes), `shards` (the data files, all required) and
  whatever the writer adds. `lookup` trusts a folder only when all of that matches.

>>> import tempfile
>>> parent = tempfile.mkdtemp()
>>> key = content_key([], settings={"rate": 16000})
>>> lookup(parent, f"demo-{key}", key=key, layout=("demo", 1)) is None
True
>>> with building(parent, f"demo-{key}", key=key, layout=("demo", 1)) as build:
...     _ = (build.folder / "part-0.txt").write_text("data")
...     build.manifest = {"shards": ["part-0.txt"], "clips": 1}
>>> lookup(parent, f"demo-{key}", key=key, layout=("demo", 1))["clips"]
1
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from seqapps.atomic import atomic_dir, remove_stale_temporaries, write_text

MANIFEST = "manifest.json"


def file_fingerprints(paths: Sequence[str | os.PathLike]) -> list[list]:
    """[absolute path, size, mtime in ns] per file ([path, None, None] when missing)."""
    files = []
    for p in paths:
        p = os.path.abspath(os.fspath(p))
        try:
            stat = os.stat(p)
            files.append([p, stat.st_size, stat.st_mtime_ns])
        except OSError:
            files.append([p, None, None])
    return files


def content_key(paths: Sequence[str | os.PathLike], *, settings: dict, extra=None,
                length: int = 24) -> str:
    """Hex digest over the files' fingerprints, `settings` and `extra` (anything JSON
    can show, e.g. labels or a layer's config and weights digest).

    >>> content_key([], settings={"rate": 16000}) != content_key([], settings={"rate": 8000})
    True
    """
    blob = json.dumps({"files": file_fingerprints(paths), "settings": settings, "extra": extra},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of a cache folder, or None when it has none (or an unreadable one)."""
    try:
        return json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def lookup(parent: str | os.PathLike, name: str, *, key: str, layout: tuple[str, int]) -> dict | None:
    """The manifest of `parent/name` when it is a complete cache of this key and format
    (every shard present), else None."""
    folder = Path(parent) / name
    manifest = read_manifest(folder)
    if not _trusted(folder, manifest, key=key, layout=layout):
        return None
    return manifest


def _trusted(folder: Path, manifest, *, key: str, layout: tuple[str, int]) -> bool:
    if not isinstance(manifest, dict) or manifest.get("key") != key:
        return False
    if manifest.get("layout") != [layout[0], layout[1]]:
        return False
    return all((folder / name).is_file() for name in manifest.get("shards", []))


class CacheBuild:
    """What `building` yields: write data files into `folder`, then set `manifest`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.manifest: dict | None = None


@contextlib.contextmanager
def building(parent: str | os.PathLike, name: str, *, key: str,
             layout: tuple[str, int]) -> Iterator[CacheBuild]:
    """Write a cache `parent/name` atomically; yields a CacheBuild.

    The block writes its files into `build.folder` (a temporary folder) and sets
    `build.manifest` (a dict; `shards` lists the data files). On leaving the block the
    manifest is completed with `key` and `layout`, written last, and the folder renamed
    into place; if another run published a complete cache of the same key meanwhile,
    that one is kept. An error inside the block (or no manifest) publishes nothing.
    Stale temporaries of killed runs in `parent` are removed first.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(parent)

    def keep_existing(folder: Path) -> bool:
        return _trusted(folder, read_manifest(folder), key=key, layout=layout)

    with atomic_dir(parent / name, keep_existing=keep_existing) as tmp:
        build = CacheBuild(tmp)
        yield build
        if build.manifest is None:
            raise RuntimeError(f"cache {name}: the build set no manifest, nothing published")
        build.manifest = {**build.manifest, "key": key, "layout": [layout[0], layout[1]]}
        write_text(tmp / MANIFEST, json.dumps(build.manifest, indent=1, default=_json_default))


def _json_default(value):
    """NumPy values as lists or numbers; anything else (a path, a dtype) as its str."""
    return value.tolist() if hasattr(value, "tolist") else str(value)
