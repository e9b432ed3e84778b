"""Shared fixtures. Media files are made in tmp_path; real data is used when present."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

# ../shared/data beside the project; SEQAPPS_SHARED_DATA points elsewhere (e.g. from a git worktree).
SHARED_DATA = Path(
    os.environ.get("SEQAPPS_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real recordings and videos); skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same seeds, so failures reproduce."""
    import keras

    keras.utils.set_random_seed(1234)
    yield
