"""Train / val / test splits that never split a group, and saved splits (CSV).

``split_examples`` divides a ``pipelines.sources.DataSource`` into train / val / test so
that no group (e.g. one speaker, one source recording) is in two splits;
``write_split`` / ``read_split`` save the split used so a run can be audited and
repeated. All of them are importable from ``pipelines.sources`` too.

>>> from pipelines.sources import DataSource, Example
>>> examples = [Example(f"/{i}.wav", "ab"[i % 2], None, f"g{i // 2}", None) for i in range(8)]
>>> split = split_examples(DataSource(examples, ["a", "b"], None, "classify"), seed=0)
>>> sorted(split), sum(map(len, split.values()))
(['test', 'train', 'val'], 8)
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from typing import TYPE_CHECKING

import numpy as np

from pipelines.report import BadInputReport
from seqapps.atomic import atomic_path
from seqapps.errors import ConfigError, invalid_argument

if TYPE_CHECKING:  # annotations only: pipelines.sources imports this module
    from pipelines.sources import DataSource

__all__ = ["SPLITS", "read_split", "split_examples", "write_split"]

SPLITS = ("train", "val", "test")
# write_split stores each regression target in a column "target:NAME".
_TARGET_PREFIX = "target:"

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

    >>> from pipelines.sources import DataSource, Example
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


def write_split(path: str | os.PathLike, source: DataSource, split: dict[str, list[int]],
                *, skipped: dict[str, str] | None = None) -> None:
    """Save a split as CSV ``path,label,group,split`` (absolute media paths).

    Regression targets go to extra columns ``target:NAME``. With ``skipped`` (path ->
    reason, e.g. from a ``BadInputReport``) a column ``skipped`` holds the reason of each
    file that was listed but could not be used (empty for the others); a skipped file that
    is in no split (rejected while listing the folder: an empty file, a dangling link)
    gets a row after them with an empty split (label: its folder, when that is a class).
    ``read_split`` (or ``from_manifest``) reads it back. The file is written atomically.

    >>> import os, tempfile
    >>> from pipelines.sources import DataSource, Example
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
    if skipped is not None:
        header.append("skipped")
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        written = set()
        for name in SPLITS:
            for i in sorted(int(i) for i in split.get(name, [])):
                e = source.examples[i]
                row = [e.path, e.label or "", e.group or "", name]
                if source.task == "regress":
                    row += [repr(float(t)) for t in e.targets]
                if skipped is not None:
                    row.append(skipped.get(e.path, ""))
                writer.writerow(row)
                written.add(e.path)
        classes = set(source.class_names or []) if source.task == "classify" else set()
        listed = written | {e.path for e in source.examples}
        for file, reason in sorted((skipped or {}).items()):
            if file in listed:
                continue
            folder = os.path.basename(os.path.dirname(file))
            row = [file, folder if folder in classes else "", "", ""]
            if source.task == "regress":
                row += [""] * len(source.target_names)
            writer.writerow(row + [reason])


def read_split(path: str | os.PathLike, *, report: BadInputReport | None = None
               ) -> DataSource:
    """Read a file written by ``write_split``; every example carries its split.

    Regression is recognised by the ``target:NAME`` columns. Rows whose file is gone go
    to ``report`` as in ``from_manifest``.

    Raises:
        ConfigError: as ``from_manifest``, or a row without a split.
    """
    from pipelines.sources import from_manifest  # here: that module imports this one

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
    # Rows of files skipped before any split (write_split's rows with an empty split
    # and a reason) are a record, not examples.
    rejected = _rejected_rows(manifest)
    source.examples = [e for e in source.examples if not (e.split is None and e.path in rejected)]
    without = [e.path for e in source.examples if e.split is None]
    if without:
        raise ConfigError(f"split file {manifest}: {len(without)} rows have no split, "
                          f"e.g. {without[0]}")
    return source


def _rejected_rows(manifest: str) -> set[str]:
    """Paths (as ``from_manifest`` resolves them) of rows with a skipped reason and no split."""
    base = os.path.dirname(manifest)
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    return {os.path.normpath(os.path.join(base, os.path.expanduser((r.get("path") or "").strip())))
            for r in rows if not (r.get("split") or "").strip() and (r.get("skipped") or "").strip()}
