"""Constructor arguments after the first are keyword-only (keras-hub style) for every
public layer, initializer, head and model class in seqapps."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "seqapps"
SCANNED = sorted([*ROOT.joinpath("layers").glob("*.py"), ROOT / "heads.py", ROOT / "tasks.py"])


def _positional_parameters():
    for path in SCANNED:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    names = [a.arg for a in item.args.posonlyargs + item.args.args][1:]  # not self
                    yield f"{path.relative_to(ROOT.parent)}::{node.name}", names


def test_the_scan_sees_the_classes_it_guards():
    scanned = dict(_positional_parameters())
    assert {"seqapps/layers/recurrent.py::Recurrent", "seqapps/layers/initializers.py::SpectralRadius",
            "seqapps/heads.py::ClassificationHead", "seqapps/tasks.py::SequenceModel"} <= set(scanned)


def test_at_most_one_positional_constructor_argument():
    offenders = {name: params for name, params in _positional_parameters() if len(params) > 1}
    assert offenders == {}


def test_recurrent_and_spectral_radius_refuse_positional_options():
    from seqapps.layers import Recurrent
    from seqapps.layers.initializers import SpectralRadius

    with pytest.raises(TypeError):
        Recurrent(4, "relu")
    with pytest.raises(TypeError):
        SpectralRadius(0.9)
    assert Recurrent(4, activation="relu").get_config()["activation"] == "relu"
    assert SpectralRadius(radius=0.9).get_config()["radius"] == 0.9
