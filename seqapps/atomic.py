"""Atomic writes of files and folders: a killed process never leaves half of one in place.

Everything is written under a temporary name in the same folder (same file system), then
renamed, which is atomic on POSIX: readers see the old file or folder or the new one,
never half of one. This module is the only place in seqapps and pipelines that renames
into place.

Temporary names are `.tmp-PID-RANDOM-NAME`: hidden, unique per process and call, ending
with the final name (so its suffix still tells Keras, OpenCV or matplotlib the format),
and naming their writer, so `remove_stale_temporaries` can tell a killed run's
leftovers from a temporary another process is still writing.

>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> write_json(os.path.join(folder, "m.json"), {"accuracy": 1.0})
>>> open(os.path.join(folder, "m.json")).read().startswith("{")
True
>>> with atomic_dir(os.path.join(folder, "cache")) as tmp:
...     _ = (tmp / "part-0").write_text("done")
>>> sorted(os.listdir(folder))
['cache', 'm.json']
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside `path`: `.tmp-PID-RANDOM-NAME`."""
    path = Path(path)
    return path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")


def temporary_owner(path: str | os.PathLike) -> int | None:
    """The writer's process id of a name made by temporary_path, else None."""
    name = Path(path).name
    if not name.startswith(TEMP_PREFIX):
        return None
    pid = name[len(TEMP_PREFIX):].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` atomically.

    >>> with atomic_path("report.csv") as tmp:     # doctest: +SKIP
    ...     tmp.write_text("a,b\\n")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike, *, keep_existing: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Yield a new empty temporary folder beside `path`; on success it becomes `path`.

    On an error (or a kill) inside the block, `path` is untouched and the temporary is
    removed (or, after a kill, left for remove_stale_temporaries). When `path` exists
    by the time the block ends, `keep_existing(path)` decides: True keeps it and drops
    the new folder (another writer published the same content first); False, or no
    `keep_existing`, swaps the new folder in and removes the old one. `path` is never
    half written; during a swap it is briefly absent.

    >>> with atomic_dir("cache/audio-1f2e") as tmp:       # doctest: +SKIP
    ...     write_shards(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    tmp.mkdir()
    try:
        yield tmp
        _publish_dir(tmp, path, keep_existing)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish_dir(tmp: Path, path: Path, keep_existing) -> None:
    for _ in range(3):  # the loser of a race with another writer looks again
        try:
            os.rename(tmp, path)  # fails when path exists (as a non-empty folder)
            return
        except OSError:
            if not path.exists():
                raise
        if keep_existing is not None and keep_existing(path):
            return
        # Move the old folder aside, then ours in; the old one is removed after.
        old = temporary_path(path)
        try:
            os.rename(path, old)
        except FileNotFoundError:
            continue  # someone else moved it: try again
        try:
            os.rename(tmp, path)
            return
        finally:
            shutil.rmtree(old, ignore_errors=True)
    raise FileExistsError(f"{path}: could not be replaced (other writers keep publishing it)")


def publish_new_dir(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename the complete folder `tmp` to `path`, which must not exist: never overwrites
    (a SavedModel version is immutable once served). Every file and folder is flushed to
    disk first and the rename itself after, so a crash leaves either nothing or the whole
    folder. Raises FileExistsError when `path` exists or appears meanwhile.

    >>> publish_new_dir("models/.tmp-build", "models/3")     # doctest: +SKIP
    """
    tmp, path = Path(tmp), Path(path)
    _fsync_tree(tmp)
    if path.exists():
        raise FileExistsError(path)
    try:
        os.rename(tmp, path)  # refuses a non-empty existing folder
    except OSError:
        if path.exists():
            raise FileExistsError(path) from None
        raise
    _fsync(path.parent)


def _fsync(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync(Path(root))


def remove_stale_temporaries(folder: str | os.PathLike, pattern: str = "*") -> list[Path]:
    """Remove temporaries in `folder` whose name ends with `pattern` and whose writer is
    gone (a killed run's leftovers); those of live processes are kept. Returns them."""
    removed = []
    for tmp in Path(folder).glob(f"{TEMP_PREFIX}*-*-{pattern}"):
        pid = temporary_owner(tmp)
        if pid is None or process_alive(pid):
            continue
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data, *, indent: int = 2) -> None:
    write_text(path, json.dumps(data, indent=indent, default=_to_builtin) + "\n")


def _to_builtin(value):
    """JSON for NumPy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def process_alive(pid: int) -> bool:
    """Whether process `pid` still runs: temporary files it owns may still be written."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) holds no files open any more.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
