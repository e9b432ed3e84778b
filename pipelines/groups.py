"""Groups (speakers, recordings) of a source: from file names, a separate test set, and
group folds for cross-validation.

A group is what must never be split between training and evaluation (one speaker, one
microphone, one source recording): ``groups_from_names`` derives it from file names
(``--group-pattern``), ``with_test_set`` joins a separate test set without holding out
anything more of the training set, ``group_folds`` gives K group folds.

>>> ex = [Example(f"/d/{s}_nohash_{n}.wav", "yes", None, None, None) for s in ("a1", "b2") for n in (0, 1)]
>>> [e.group for e in groups_from_names(DataSource(ex, ["yes"], None, "classify"), "speech_commands").examples]
['a1', 'a1', 'b2', 'b2']
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import replace

import numpy as np

from pipelines.sources import DataSource, Example  # noqa: F401 (Example: doctests)
from seqapps.errors import ConfigError, invalid_argument

__all__ = ["GROUP_PRESETS", "groups_from_names", "with_test_set", "group_folds"]

# Named --group-pattern presets, matched against the file name without its extension.
GROUP_PRESETS = {
    # free-spoken-digit-dataset: {digit}_{speaker}_{n}.wav, e.g. 3_jackson_12.wav
    "digits": r"^[^_]+_(?P<group>.+)_\d+$",
    # Speech Commands: {speaker}_nohash_{n}.wav, e.g. 0a7c2a8d_nohash_1.wav
    "speech_commands": r"^(?P<group>[^_]+)_nohash_\d+$",
}


def groups_from_names(source: DataSource, pattern: str) -> DataSource:
    """The source with each example's group taken from its file name.

    ``pattern``: a preset name (``GROUP_PRESETS``: "digits", "speech_commands") or a
    regular expression with a named group ``(?P<group>...)``, searched in the file name
    without its extension. Examples that already have a group (manifest column) keep it.

    Raises:
        ConfigError: a bad pattern, or file names that do not match it (the first few named).

    >>> ex = [Example(f"/d/{d}/{d}_{s}_{n}.wav", str(d), None, None, None)
    ...       for d in (0, 1) for s in ("ann", "bob") for n in (0, 1)]
    >>> sorted({e.group for e in groups_from_names(DataSource(ex, ["0", "1"], None, "classify"),
    ...                                            "digits").examples})
    ['ann', 'bob']
    """
    expression = GROUP_PRESETS.get(pattern, pattern)
    try:
        compiled = re.compile(expression)
    except (re.error, TypeError) as err:
        raise invalid_argument("group_pattern", pattern, f"a regular expression or one of "
                               f"{', '.join(GROUP_PRESETS)} ({err})") from None
    if "group" not in compiled.groupindex:
        raise invalid_argument("group_pattern", pattern, "a regular expression with a named group "
                               "(?P<group>...), or one of " + ", ".join(GROUP_PRESETS))
    examples, unmatched = [], []
    for example in source.examples:
        if example.group is not None:
            examples.append(example)
            continue
        match = compiled.search(os.path.splitext(os.path.basename(example.path))[0])
        if match is None or not match.group("group"):
            unmatched.append(example.path)
            continue
        examples.append(replace(example, group=match.group("group")))
    if unmatched:
        raise ConfigError(f"{len(unmatched)} of {len(source.examples)} file names do not match "
                          f"--group-pattern {pattern!r} ({expression}), e.g. {', '.join(unmatched[:3])}")
    return DataSource(examples=examples, class_names=source.class_names,
                      target_names=source.target_names, task=source.task)


def with_test_set(train: DataSource, test: DataSource) -> DataSource:
    """One source of `train`'s examples (split train, or their own train/val) and `test`'s
    (split test), for a separate test set: nothing of `train` is held out for testing.

    Raises:
        ConfigError: different tasks or targets, test labels unknown to train, or a
            training source whose split column already names a test set.
    """
    if train.task != test.task or train.target_names != test.target_names:
        raise ConfigError("the test set must have the task and targets of the training set "
                          f"(train: {train.task} {train.target_names}, test: {test.task} {test.target_names})")
    if train.task == "classify":
        unknown = sorted({e.label for e in test.examples} - set(train.class_names))
        if unknown:
            raise ConfigError(f"test labels not in the training set: {', '.join(unknown)}")
    if any(e.split == "test" for e in train.examples):
        raise ConfigError("the training manifest's split column names a test set; give either it "
                          "or a separate test set, not both")
    own = [replace(e, split=e.split or "train") for e in train.examples]
    if any(e.split is not None for e in train.examples) and any(e.split is None for e in train.examples):
        raise ConfigError("a split is given for some training examples but not all")
    return DataSource(examples=own + [replace(e, split="test") for e in test.examples],
                      class_names=train.class_names, target_names=train.target_names, task=train.task)


def group_folds(source: DataSource, *, folds: int, seed: int = 0) -> list[np.ndarray]:
    """Held-out indices of each of `folds` group folds (every group in exactly one).

    Classification uses ``StratifiedGroupKFold`` (class proportions kept as far as the
    groups allow), regression ``GroupKFold``. An example without a group is its own group.

    Raises:
        ConfigError: `folds` < 2 or more folds than groups.
    """
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    groups = np.asarray([e.group if e.group is not None else f"\0example {i}"
                         for i, e in enumerate(source.examples)], dtype=object)
    n_groups = len(np.unique(groups))
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= n_groups:
        raise invalid_argument("folds", folds, f"an integer in [2, {n_groups}] (the number of groups)")
    index = np.arange(len(source.examples))
    if source.task == "classify":
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # "least populated class has only N members"
            warnings.simplefilter("ignore", UserWarning)
            parts = list(splitter.split(index, source.labels_as_ids(), groups))
    else:
        parts = list(GroupKFold(n_splits=folds).split(index, groups=groups))
    return [np.sort(held) for _, held in parts]
