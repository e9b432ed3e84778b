"""Usage errors found before any heavy import: a command that cannot start says so in
well under a second instead of after loading TensorFlow.

Each check repeats, with the standard library alone, the first checks of the library
function the command calls, in the same words (tests/seqapps/test_cli_usage_errors.py
compares them): the library still checks everything itself when called from Python.

>>> import argparse
>>> usage_problem(argparse.Namespace(command="predict", model="/no/such/run", files=["a.wav"]))
'run folder not found: /no/such/run'
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def usage_problem(args) -> str | None:
    """The first usage error of parsed command-line `args`, or None."""
    problem = _common_paths(args)
    if problem is None and args.command in _BY_COMMAND:
        problem = _BY_COMMAND[args.command](args)
    return problem


def _common_paths(args) -> str | None:
    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None:
        problem = data_folder_problem(data_dir)
        if problem:
            return problem
    manifest = getattr(args, "manifest", None)
    if manifest is not None and not os.path.isfile(manifest):
        return f"manifest {manifest} does not exist or is not a file"
    streaming = getattr(args, "streaming", None)
    if streaming is not None and not os.path.isfile(streaming):
        return f"events CSV {streaming} does not exist or is not a file"
    for flag in ("test_dir", "test_manifest"):
        path = getattr(args, flag, None)
        if path is not None and not (os.path.isdir(path) if flag == "test_dir" else os.path.isfile(path)):
            return f"--{flag.replace('_', '-')} {path} does not exist or is not a {'folder' if flag == 'test_dir' else 'file'}"
    if args.command in ("train", "evaluate") and data_dir is None and manifest is None and streaming is None:
        return "give DATA_DIR or --manifest CSV"
    run_dir = getattr(args, "run_dir", None)
    if run_dir is not None and os.path.exists(run_dir) and not os.path.isdir(run_dir):
        return f"run folder {run_dir} is a file, not a folder"
    return None


# ----------------------------------------------------------------- the library's first checks
def data_folder_problem(folder, kind: str | None = None) -> str | None:
    """pipelines.sources.from_directory: the folder exists, is a folder and (when `kind`
    is known) has class sub-folders."""
    root = os.path.abspath(os.fspath(folder))
    if not os.path.exists(root):
        return f"data folder {root} does not exist"
    if not os.path.isdir(root):
        return f"data folder {root} is not a folder"
    if kind is None:
        return None
    try:
        with os.scandir(root) as entries:
            # Hidden folders and "__MACOSX" are never classes (pipelines.sources._ignored).
            classes = [e.name for e in entries if e.is_dir() and not e.name.startswith(".") and e.name != "__MACOSX"]
    except OSError:
        return None  # unreadable: the library names the problem
    if classes:
        return None
    from seqapps.runs.settings import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS  # standard library only

    first = (AUDIO_EXTENSIONS if kind == "audio" else VIDEO_EXTENSIONS)[0].lower()
    return f"data folder {root} has no class sub-folders (expected {root}/CLASS_NAME/file{first})"


def run_folder_problem(run_dir) -> str | None:
    """seqapps.runs.train.load_run (evaluate, diagnose)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return f"run folder not found: {run_dir}"
    if not (run_dir / "model.keras").is_file():
        return f"{run_dir} holds no trained model (model.keras is missing); run `seqapps train` first"
    return None


def predictor_problem(model_path) -> str | None:
    """seqapps.runs.evaluate.make_predictor (predict): a run folder or a SavedModel."""
    path = Path(model_path)
    if (path / "saved_model.pb").is_file() or (path / "model.keras").is_file():
        return None
    if not path.exists():
        return run_folder_problem(path)
    if not path.is_dir():
        return f"{path} is a file, not a run folder or a SavedModel folder"
    try:
        versions = sorted((p for p in path.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    except OSError:
        return None
    if versions and (versions[-1] / "saved_model.pb").is_file():
        return None
    return f"{path} holds no trained model (model.keras is missing) and no SavedModel (saved_model.pb)"


def streaming_problem(model_path) -> str | None:
    """seqapps.runs.detect.load_streaming_model (detect, listen, evaluate --streaming)."""
    path = Path(model_path)
    if (path / "model.keras").is_file() or (path / "saved_model.pb").is_file():
        return None
    try:  # seqapps.exported.load_exported: the latest integer version
        versions = sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit()) \
            if path.is_dir() else []
    except OSError:
        return None
    if versions and (path / str(versions[-1]) / "saved_model.pb").is_file():
        return None
    return f"{path}: neither a run folder (model.keras) nor a SavedModel"


def export_problem(run_dir) -> str | None:
    """seqapps.runs.export.export_run."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.keras").is_file():
        return f"{run_dir}: no model.keras (is this a `seqapps train` run folder?)"
    if not (run_dir / "config.json").is_file():
        return f"{run_dir / 'config.json'} is missing"
    return None


def creatable_folder_problem(folder, *, what: str) -> str | None:
    """A folder that will be made with its parents: no file in the way."""
    path = Path(os.path.abspath(folder))
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{what} {folder} cannot be made: {parent} is a file, not a folder"
            return None
    return None


def _source_problem(kind, *, data_dir, manifest, task) -> str | None:
    """seqapps.runs.data.load_source, before it reads the folder's files."""
    if data_dir is not None and manifest is not None:
        return "give exactly one of DATA_DIR or --manifest CSV"
    if data_dir is not None and task != "classify":
        return "regression needs a --manifest CSV with numeric targets (a folder gives classes)"
    return None if data_dir is None else data_folder_problem(data_dir, kind)


def _json_object(path) -> dict:
    """A JSON object file's contents, or {} (the library reports a broken file itself)."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


# ----------------------------------------------------------------- per command
def _train(args) -> str | None:
    from seqapps.errors import ConfigError
    from seqapps.runs.settings import resolve_settings  # standard library only

    if args.strategy == "multi-worker" or (args.strategy == "auto" and os.environ.get("TF_CONFIG", "").strip()):
        # seqapps.distribute checks TF_CONFIG before anything else, with TensorFlow: its
        # error comes first, as it always did.
        return None
    if args.folds is not None and (args.test_dir or args.test_manifest):
        return "--folds makes its own held-out groups: leave out --test-dir / --test-manifest"
    try:  # what seqapps.runs.train.train_run reads first
        resolve_settings(args.kind, config_file=args.config,
                         overrides=None if args.epochs is None else {"training": {"epochs": args.epochs}})
    except ConfigError as err:
        return str(err)
    problem = _source_problem(args.kind, data_dir=args.data_dir, manifest=args.manifest, task=args.task)
    if problem is None and args.test_dir is not None and args.test_manifest is not None:
        problem = "give --test-dir or --test-manifest, not both"  # seqapps.runs.data.load_training_source
    if problem is None and args.test_dir is not None:
        problem = _source_problem(args.kind, data_dir=args.test_dir, manifest=None, task=args.task)
    return problem or creatable_folder_problem(args.run_dir, what="run folder")


def _evaluate(args) -> str | None:
    if args.streaming:
        return streaming_problem(args.run_dir)
    config = _json_object(Path(args.run_dir) / "config.json")
    return run_folder_problem(args.run_dir) or _source_problem(
        config.get("kind"), data_dir=args.data_dir, manifest=args.manifest, task=config.get("task", "classify"))


def _diagnose(args) -> str | None:
    if (args.run_dir is None) == (args.config is None):
        return "give exactly one of RUN or --config FILE"
    if args.run_dir is not None:
        problem, kind = run_folder_problem(args.run_dir), _json_object(Path(args.run_dir) / "config.json").get("kind")
    elif not Path(args.config).is_file():
        return f"config file not found: {args.config}"
    else:
        problem, kind = None, _json_object(args.config).get("kind", "audio")
    return problem or (None if args.data is None else data_folder_problem(args.data, kind))


_BY_COMMAND = {
    "train": _train,
    "evaluate": _evaluate,
    "predict": lambda args: predictor_problem(args.model),
    "detect": lambda args: streaming_problem(args.model),
    "listen": lambda args: streaming_problem(args.run_dir),
    "export": lambda args: export_problem(args.run_dir),
    "diagnose": _diagnose,
}
