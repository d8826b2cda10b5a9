"""Shared test setup: the data folder beside the checkout, and two threads as on CI."""

import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
os.environ.setdefault("PYNN_DATASETS", str(DATA))


@pytest.fixture
def data_dir() -> Path:
    return DATA
