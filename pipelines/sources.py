"""Data sources: class folders and CSV manifests as lists of examples (splits: ``pipelines.splits``).

A ``DataSource`` is a list of ``Example`` rows (an absolute media path plus a class label
or regression targets, an optional group and an optional split) with the class / target
names. Sources come from

* ``from_directory``: one sub-folder per class, the convention of
  ``keras.utils.audio_dataset_from_directory``;
* ``from_manifest``: a CSV file with columns ``path,label`` and optional ``group`` and
  ``split`` (``train`` / ``val`` / ``test``).

``split_examples`` divides a source into train / val / test so that no group (e.g. one
speaker, one source recording) is in two splits; ``write_split`` / ``read_split`` save
the split used so a run can be audited and repeated. They live in ``pipelines.splits``
and are importable from here too.

>>> import os, tempfile
>>> root = tempfile.mkdtemp()
>>> for name in ("dog/a.wav", "dog/b.wav", "cat/c.wav"):
...     os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
...     _ = open(os.path.join(root, name), "wb").write(b"RIFF")
>>> source = from_directory(root, extensions=(".wav",))
>>> source.class_names, source.labels_as_ids().tolist()
(['cat', 'dog'], [0, 1, 1])
"""

from __future__ import annotations

import csv
import math
import os
import stat
from dataclasses import dataclass

import numpy as np

from pipelines.report import BadInputReport

# Splitting lives in pipelines.splits; its names stay importable from here.
from pipelines.splits import SPLITS, read_split, split_examples, write_split
from seqapps.errors import ConfigError, invalid_argument

__all__ = [
    "SPLITS",
    "DataSource",
    "Example",
    "from_directory",
    "from_manifest",
    "read_split",
    "split_examples",
    "write_split",
]

TASKS = ("classify", "regress")


@dataclass(frozen=True)
class Example:
    """One row of a data set.

    Attributes:
        path: absolute path of the media file.
        label: class name (classification) or None.
        targets: regression targets (one float per target name) or None.
        group: examples sharing a group never go to different splits (None: own group).
        split: "train", "val", "test" or None.
    """

    path: str
    label: str | None
    targets: tuple[float, ...] | None
    group: str | None
    split: str | None


@dataclass
class DataSource:
    """Examples plus their class or target names.

    Attributes:
        examples: the rows, in a stable order (sorted paths for folders, file order for
            manifests).
        class_names: sorted class names (classification), else None.
        target_names: regression target names, else None.
        task: "classify" or "regress".
    """

    examples: list[Example]
    class_names: list[str] | None
    target_names: list[str] | None
    task: str  # "classify" | "regress"

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.examples]

    def labels_as_ids(self) -> np.ndarray:
        """Class ids, int32 ``[n_examples]`` (index into ``class_names``)."""
        if self.task != "classify":
            raise ConfigError(f"labels_as_ids needs a classification source; task={self.task!r}")
        index = {name: i for i, name in enumerate(self.class_names)}
        return np.asarray([index[e.label] for e in self.examples], dtype=np.int32)

    def targets_array(self) -> np.ndarray:
        """Regression targets, float32 ``[n_examples, n_targets]``."""
        if self.task != "regress":
            raise ConfigError(f"targets_array needs a regression source; task={self.task!r}")
        n_targets = len(self.target_names)
        return np.asarray([e.targets for e in self.examples],
                          dtype=np.float32).reshape(-1, n_targets)

    def subset(self, indices) -> DataSource:
        """The examples at ``indices`` (e.g. ``split_examples(...)["train"]``), same names."""
        return DataSource(examples=[self.examples[int(i)] for i in indices],
                          class_names=self.class_names, target_names=self.target_names,
                          task=self.task)


# --------------------------------------------------------------------------- folders


def _normalise_extensions(extensions) -> tuple[str, ...]:
    if isinstance(extensions, str) or not extensions:
        raise invalid_argument("extensions", extensions,
                               'a non-empty tuple of file extensions such as (".wav",)')
    return tuple("." + ext.lower().lstrip(".") for ext in extensions)


def _ignored(name: str) -> bool:
    # Hidden files and folders (.DS_Store, .git), macOS AppleDouble files ("._clip.wav":
    # resource forks, not audio) and the "__MACOSX" folder that zip archives from a Mac
    # carry: never data, so skipped silently.
    return name.startswith(".") or name == "__MACOSX"


def _file_problem(path: str) -> str | None:
    """Why a listed entry cannot be a media file, or None (same words as pipelines.decode)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"dangling link (points to {os.readlink(path)}, which does not exist)"
        return "file not found"
    except PermissionError:
        return "permission denied"
    except OSError as error:  # ELOOP: a link to itself
        return f"unreadable link ({error.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "not a file (a pipe)" if stat.S_ISFIFO(info.st_mode) else "not a file"
    if info.st_size == 0:
        return "empty file (0 bytes)"
    return None


def from_directory(root: str | os.PathLike, *, extensions: tuple[str, ...],
                   report: BadInputReport | None = None, kind: str = "media") -> DataSource:
    """A classification source from one sub-folder per class.

    ``root/CLASS/**/file.ext``: class names are the sub-folder names, sorted; files are
    found recursively inside each class folder. Folders as users have them: symbolic links
    (to files and to folders) are followed, each real folder once; hidden files and
    folders, AppleDouble ``._*`` files and ``__MACOSX`` folders are ignored silently;
    extensions match case-insensitively; names may hold spaces and any unicode. Files
    whose extension is not in ``extensions`` and files directly under ``root`` are
    ignored. Dangling links, empty (0-byte) files, unreadable entries and pipes go to
    ``report`` with their reason (or raise ``BadMediaError`` naming the file with a
    strict report or none). Groups are None.

    Args:
        root: the folder.
        extensions: e.g. ``(".wav", ".flac")`` (leading dot optional).
        report: receives skipped files. ``None`` means strict, as everywhere in
            pipelines: the first unusable file raises ``BadMediaError``; pass
            ``BadInputReport()`` to skip such files and list them.
        kind: word used in error messages ("audio", "video").

    Raises:
        ConfigError: ``root`` missing or not a folder, no class sub-folders, or no
            matching file ("no audio files found under ROOT ...").

    >>> from_directory("/no/such/folder", extensions=(".wav",), kind="audio")
    Traceback (most recent call last):
    ...
    seqapps.errors.ConfigError: data folder /no/such/folder does not exist
    """
    extensions = _normalise_extensions(extensions)
    report = BadInputReport(strict=True) if report is None else report
    root = os.path.abspath(os.fspath(root))
    if not os.path.exists(root):
        raise ConfigError(f"data folder {root} does not exist")
    if not os.path.isdir(root):
        raise ConfigError(f"data folder {root} is not a folder")
    class_names = sorted(
        entry.name for entry in os.scandir(root)
        if entry.is_dir() and not _ignored(entry.name)
    )
    if not class_names:
        raise ConfigError(f"data folder {root} has no class sub-folders "
                          f"(expected {root}/CLASS_NAME/file{extensions[0]})")
    examples = []
    for name in class_names:
        seen = set()  # real folders walked: a link back up the tree must not loop forever
        for folder, subfolders, files in os.walk(os.path.join(root, name), followlinks=True):
            real = os.path.realpath(folder)
            if real in seen:
                subfolders[:] = []
                continue
            seen.add(real)
            subfolders[:] = sorted(d for d in subfolders if not _ignored(d))
            for file in sorted(files):
                if _ignored(file) or os.path.splitext(file)[1].lower() not in extensions:
                    continue
                path = os.path.join(folder, file)
                problem = _file_problem(path)
                if problem is not None:
                    report.add(path, problem)
                    continue
                examples.append(Example(path, name, None, None, None))
    if not examples:
        raise ConfigError(f"no {kind} files found under {root} "
                          f"(looked for {', '.join(extensions)} in {len(class_names)} "
                          "class sub-folders)")
    return DataSource(examples=examples, class_names=class_names, target_names=None,
                      task="classify")


# --------------------------------------------------------------------------- manifests


def _parse_float(text: str, *, manifest: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{manifest} line {line}: column `{column}` must be a finite "
                          f"number for regression. Received: {text!r}")
    return value


def from_manifest(csv_path: str | os.PathLike, *, task: str = "classify",
                  target_columns: list[str] | None = None,
                  report: BadInputReport | None = None) -> DataSource:
    """A source from a CSV manifest.

    The CSV has a header row. Columns: ``path`` (absolute, or relative to the manifest's
    folder), ``label`` (class name; for regression a number), optional ``group`` and
    ``split`` (``train`` / ``val`` / ``test``, or empty). For regression with several
    targets, ``target_columns`` names the numeric columns (``label`` is then not needed).

    A row with an empty label / target or a path that does not exist is skipped and
    recorded in ``report`` with the manifest line (strict report or none: ``BadMediaError``).

    Args:
        csv_path: the manifest.
        task: "classify" or "regress".
        target_columns: regression target columns (default ``["label"]``).
        report: receives skipped rows. ``None`` means strict, as everywhere in
            pipelines: the first unusable row raises ``BadMediaError``; pass
            ``BadInputReport()`` to skip such rows and list them.

    Raises:
        ConfigError: manifest missing or empty, a required column missing, a bad
            ``split`` value, a non-numeric regression value (naming file, line, value),
            or no usable row.

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = open(os.path.join(folder, "a.wav"), "wb").write(b"RIFF")
    >>> with open(os.path.join(folder, "list.csv"), "w") as f:
    ...     _ = f.write("path,label,split\\na.wav,0.5,train\\n")
    >>> source = from_manifest(os.path.join(folder, "list.csv"), task="regress")
    >>> source.targets_array().tolist(), source.examples[0].path == os.path.join(folder, "a.wav")
    ([[0.5]], True)
    """
    if task not in TASKS:
        raise invalid_argument("task", task, 'one of "classify", "regress"')
    if target_columns is not None:
        if task != "regress":
            raise invalid_argument("target_columns", target_columns,
                                   'None unless task="regress"')
        if isinstance(target_columns, str) or not target_columns:
            raise invalid_argument("target_columns", target_columns,
                                   "a non-empty list of column names")
        target_columns = list(target_columns)
    elif task == "regress":
        target_columns = ["label"]
    report = BadInputReport(strict=True) if report is None else report
    manifest = os.path.abspath(os.fspath(csv_path))
    if not os.path.isfile(manifest):
        raise ConfigError(f"manifest {manifest} does not exist or is not a file")
    base = os.path.dirname(manifest)

    examples = []
    with open(manifest, newline="", encoding="utf-8-sig") as f:  # -sig: Excel's BOM
        reader = csv.DictReader(f, skipinitialspace=True)
        if reader.fieldnames is None:
            raise ConfigError(f"manifest {manifest} is empty (expected a header row "
                              "path,label[,group,split])")
        reader.fieldnames = [name.strip() for name in reader.fieldnames]
        required = ["path"] + (target_columns if task == "regress" else ["label"])
        missing = [c for c in required if c not in reader.fieldnames]
        if missing:
            raise ConfigError(f"manifest {manifest} line 1: missing column(s) "
                              f"{', '.join(missing)}; header is {','.join(reader.fieldnames)}")
        for row in reader:
            line = reader.line_num
            cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
            if not any(cells.values()):
                continue  # blank line
            split = cells.get("split", "").lower() or None
            if split is not None and split not in SPLITS:
                raise ConfigError(f"manifest {manifest} line {line}: `split` must be one of "
                                  f"train, val, test or empty. Received: {cells['split']!r}")
            raw_path = cells["path"]
            path = os.path.normpath(os.path.join(base, os.path.expanduser(raw_path)))
            where = f"(manifest {manifest} line {line})"
            if not raw_path:
                report.add(manifest, f"empty path {where}")
                continue
            label_columns = target_columns if task == "regress" else ["label"]
            empty = [c for c in label_columns if not cells[c]]
            if empty:
                report.add(path, f"missing {', '.join(empty)} {where}")
                continue
            problem = _file_problem(path)
            if problem is not None and not problem.startswith("empty"):  # empties: the decoder says so
                report.add(path, f"{problem} {where}")
                continue
            if task == "regress":
                targets = tuple(_parse_float(cells[c], manifest=manifest, line=line, column=c)
                                for c in target_columns)
                label = None
            else:
                targets, label = None, cells["label"]
            examples.append(Example(path, label, targets, cells.get("group") or None, split))
    if not examples:
        raise ConfigError(f"manifest {manifest} has no usable rows "
                          f"({report.count} recorded as bad)")
    if task == "classify":
        return DataSource(examples=examples, task=task, target_names=None,
                          class_names=sorted({e.label for e in examples}))
    return DataSource(examples=examples, task=task, class_names=None,
                      target_names=target_columns)
