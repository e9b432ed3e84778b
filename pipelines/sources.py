"""Data sources: class folders, CSV manifests, group-aware splits and saved splits.

A ``DataSource`` is a list of ``Example`` rows (an absolute media path plus a class label
or regression targets, an optional group and an optional split) with the class / target
names. Sources come from

* ``from_directory``: one sub-folder per class, the convention of
  ``keras.utils.audio_dataset_from_directory``;
* ``from_manifest``: a CSV file with columns ``path,label`` and optional ``group`` and
  ``split`` (``train`` / ``val`` / ``test``).

``split_examples`` divides a source into train / val / test so that no group (e.g. one
speaker, one source recording) is in two splits; ``write_split`` / ``read_split`` save
the split used so a run can be audited and repeated.

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
import warnings
from dataclasses import dataclass

import numpy as np

from pipelines.report import BadInputReport
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

SPLITS = ("train", "val", "test")
TASKS = ("classify", "regress")
# write_split stores each regression target in a column "target:NAME".
_TARGET_PREFIX = "target:"


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


def _warn_if_skipped(report: BadInputReport, own_report: bool) -> None:
    # Without a caller's report nothing may vanish silently: say what was skipped.
    if own_report and report.count:
        warnings.warn(report.summary(), stacklevel=3)


def _normalise_extensions(extensions) -> tuple[str, ...]:
    if isinstance(extensions, str) or not extensions:
        raise invalid_argument("extensions", extensions,
                               'a non-empty tuple of file extensions such as (".wav",)')
    return tuple("." + ext.lower().lstrip(".") for ext in extensions)


def from_directory(root: str | os.PathLike, *, extensions: tuple[str, ...],
                   report: BadInputReport | None = None, kind: str = "media") -> DataSource:
    """A classification source from one sub-folder per class.

    ``root/CLASS/**/file.ext``: class names are the sub-folder names, sorted; files are
    found recursively inside each class folder (hidden files and folders skipped); files
    whose extension (case-insensitive) is not in ``extensions`` and files directly under
    ``root`` are ignored. Empty (0-byte) files go to ``report`` (or raise in strict
    mode). Groups are None.

    Args:
        root: the folder.
        extensions: e.g. ``(".wav", ".flac")`` (leading dot optional).
        report: receives skipped files; default: skipped files are listed in a warning.
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
    own_report = report is None
    report = BadInputReport() if own_report else report
    root = os.path.abspath(os.fspath(root))
    if not os.path.exists(root):
        raise ConfigError(f"data folder {root} does not exist")
    if not os.path.isdir(root):
        raise ConfigError(f"data folder {root} is not a folder")
    class_names = sorted(
        entry.name for entry in os.scandir(root)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    if not class_names:
        raise ConfigError(f"data folder {root} has no class sub-folders "
                          f"(expected {root}/CLASS_NAME/file{extensions[0]})")
    examples = []
    for name in class_names:
        for folder, subfolders, files in os.walk(os.path.join(root, name), followlinks=True):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for file in sorted(files):
                if file.startswith(".") or os.path.splitext(file)[1].lower() not in extensions:
                    continue
                path = os.path.join(folder, file)
                if os.path.getsize(path) == 0:
                    report.add(path, "empty file (0 bytes)")
                    continue
                examples.append(Example(path, name, None, None, None))
    if not examples:
        raise ConfigError(f"no {kind} files found under {root} "
                          f"(looked for {', '.join(extensions)} in {len(class_names)} "
                          "class sub-folders)")
    _warn_if_skipped(report, own_report)
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
    recorded in ``report`` with the manifest line (strict report: ``BadMediaError``).

    Args:
        csv_path: the manifest.
        task: "classify" or "regress".
        target_columns: regression target columns (default ``["label"]``).
        report: receives skipped rows; default: skipped rows are listed in a warning.

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
    own_report = report is None
    report = BadInputReport() if own_report else report
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
            if not os.path.isfile(path):
                report.add(path, f"file not found {where}")
                continue
            if task == "regress":
                targets = tuple(_parse_float(cells[c], manifest=manifest, line=line, column=c)
                                for c in target_columns)
                label = None
            else:
                targets, label = None, cells["label"]
            examples.append(Example(path, label, targets, cells.get("group") or None, split))
    _warn_if_skipped(report, own_report)
    if not examples:
        raise ConfigError(f"manifest {manifest} has no usable rows "
                          f"({report.count} recorded as bad)")
    if task == "classify":
        return DataSource(examples=examples, task=task, target_names=None,
                          class_names=sorted({e.label for e in examples}))
    return DataSource(examples=examples, task=task, class_names=None,
                      target_names=target_columns)


# --------------------------------------------------------------------------- splits


def _check_fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise invalid_argument(name, value, "a number in [0, 1)")
    return float(value)


def _hold_out(indices: np.ndarray, groups: np.ndarray, labels: np.ndarray | None,
              fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (kept, held out) by whole groups; about ``fraction`` held out."""
    n_groups = len(np.unique(groups[indices]))
    if fraction == 0 or n_groups < 2:
        return indices, indices[:0]
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    if labels is not None:
        # Hold out one fold of round(1 / fraction); the folds keep class proportions.
        # sklearn refuses more folds than the largest class has members: cap there.
        largest_class = int(np.unique(labels[indices], return_counts=True)[1].max())
        n_splits = min(n_groups, largest_class, max(2, round(1 / fraction)))
    if labels is not None and n_splits < 2:
        labels = None
    if labels is not None:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # "least populated class has only N members"
            warnings.simplefilter("ignore", UserWarning)
            kept, held = next(splitter.split(indices, labels[indices], groups[indices]))
        # Every class should be learnable: move back a held-out group of each class that
        # is missing from the kept part (the smallest such group).
        for label in np.unique(labels[indices[held]]):
            if np.any(labels[indices[kept]] == label):
                continue
            class_groups, sizes = np.unique(
                groups[indices[held]][labels[indices[held]] == label], return_counts=True)
            back = np.isin(groups[indices[held]], class_groups[np.argmin(sizes)])
            kept, held = np.concatenate([kept, held[back]]), held[~back]
    else:
        # Whole groups: hold out ceil(fraction * n_groups), but leave at least one.
        n_held = min(math.ceil(fraction * n_groups), n_groups - 1)
        splitter = GroupShuffleSplit(n_splits=1, test_size=n_held, random_state=seed)
        kept, held = next(splitter.split(indices, groups=groups[indices]))
    return np.sort(indices[kept]), np.sort(indices[held])


def split_examples(source: DataSource, *, val_fraction: float = 0.15,
                   test_fraction: float = 0.15, seed: int = 0) -> dict[str, list[int]]:
    """Indices of the train / val / test examples, never splitting a group.

    If every example has a ``split`` (manifest column), it is used as given; when it
    names only train and test, val is held out of train by whole groups
    (``val_fraction`` of the train part) and nothing else is. If none has, test and then val are held out by whole groups (an example without a group is
    its own group): ``StratifiedGroupKFold`` for classification (class proportions kept
    as far as groups allow, and every class kept in train when a held-out group can be
    moved back), ``GroupShuffleSplit`` for regression (fractions count groups there).
    The same seed gives the same split.

    Args:
        source: the examples.
        val_fraction, test_fraction: wanted fractions, each in [0, 1), sum < 1.
        seed: random seed.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, sorted indices into
        ``source.examples``.

    Raises:
        ConfigError: bad fractions, or a split given for some examples but not all.

    >>> examples = [Example(f"/{i}.wav", "ab"[i % 2], None, f"g{i // 2}", None)
    ...             for i in range(40)]
    >>> source = DataSource(examples, ["a", "b"], None, "classify")
    >>> split = split_examples(source, seed=1)
    >>> sorted(len(v) for v in split.values()), sum(map(len, split.values()))
    ([6, 6, 28], 40)
    """
    val_fraction = _check_fraction("val_fraction", val_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1:
        raise invalid_argument("val_fraction + test_fraction", val_fraction + test_fraction,
                               "less than 1")
    seed = int(seed)
    groups = np.asarray([e.group if e.group is not None else f"\0example {i}"
                         for i, e in enumerate(source.examples)], dtype=object)
    labels = (np.asarray([e.label for e in source.examples], dtype=object)
              if source.task == "classify" else None)
    given = [e.split for e in source.examples]
    n_given = sum(s is not None for s in given)
    if n_given == len(given) and given:
        split = {name: [i for i, s in enumerate(given) if s == name] for name in SPLITS}
        if split["train"] and not split["val"]:
            # Only train/test given (an official test set): val comes out of train by
            # whole groups (val_fraction of train); nothing else is held out.
            train, val = _hold_out(np.asarray(split["train"]), groups, labels, val_fraction, seed + 1)
            split["train"], split["val"] = train.tolist(), val.tolist()
        return split
    if n_given:
        raise ConfigError(f"a split is given for {n_given} of {len(given)} examples; give "
                          "it for all of them or for none")

    everything = np.arange(len(source.examples))
    rest, test = _hold_out(everything, groups, labels, test_fraction, seed)
    # val_fraction is of the whole set; rest is (1 - test_fraction) of it.
    train, val = _hold_out(rest, groups, labels, val_fraction / (1 - test_fraction),
                           seed + 1)
    return {"train": train.tolist(), "val": val.tolist(), "test": test.tolist()}


def _check_split(source: DataSource, split: dict) -> None:
    seen = set()
    for name, indices in split.items():
        if name not in SPLITS:
            raise invalid_argument("split", f"<dict with key {name!r}>",
                                   "a dict with keys among train, val, test")
        for i in indices:
            if not 0 <= int(i) < len(source.examples) or int(i) in seen:
                raise invalid_argument(f"split[{name!r}]", f"<list containing {i}>",
                                       f"distinct indices in [0, {len(source.examples)})")
            seen.add(int(i))


def write_split(path: str | os.PathLike, source: DataSource, split: dict[str, list[int]]
                ) -> None:
    """Save a split as CSV ``path,label,group,split`` (absolute media paths).

    Regression targets go to extra columns ``target:NAME``. ``read_split`` (or
    ``from_manifest``) reads it back. The file is written atomically.

    >>> import os, tempfile
    >>> examples = [Example("/data/a.wav", "x", None, None, None)]
    >>> out = os.path.join(tempfile.mkdtemp(), "split.csv")
    >>> write_split(out, DataSource(examples, ["x"], None, "classify"), {"train": [0]})
    >>> open(out).read().splitlines()
    ['path,label,group,split', '/data/a.wav,x,,train']
    """
    _check_split(source, split)
    header = ["path", "label", "group", "split"]
    if source.task == "regress":
        header += [_TARGET_PREFIX + name for name in source.target_names]
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for name in SPLITS:
            for i in sorted(int(i) for i in split.get(name, [])):
                e = source.examples[i]
                row = [e.path, e.label or "", e.group or "", name]
                if source.task == "regress":
                    row += [repr(float(t)) for t in e.targets]
                writer.writerow(row)
    os.replace(tmp, path)


def read_split(path: str | os.PathLike, *, report: BadInputReport | None = None
               ) -> DataSource:
    """Read a file written by ``write_split``; every example carries its split.

    Regression is recognised by the ``target:NAME`` columns. Rows whose file is gone go
    to ``report`` as in ``from_manifest``.

    Raises:
        ConfigError: as ``from_manifest``, or a row without a split.
    """
    manifest = os.path.abspath(os.fspath(path))
    if not os.path.isfile(manifest):
        raise ConfigError(f"split file {manifest} does not exist or is not a file")
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), [])
    target_columns = [c.strip() for c in header if c.strip().startswith(_TARGET_PREFIX)]
    if target_columns:
        source = from_manifest(manifest, task="regress", target_columns=target_columns,
                               report=report)
        source.target_names = [c[len(_TARGET_PREFIX):] for c in target_columns]
    else:
        source = from_manifest(manifest, task="classify", report=report)
    without = [e.path for e in source.examples if e.split is None]
    if without:
        raise ConfigError(f"split file {manifest}: {len(without)} rows have no split, "
                          f"e.g. {without[0]}")
    return source
