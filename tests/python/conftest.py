import os
import pathlib

import pytest


def shared_dir():
    """The team's shared data folder ($GEM_SHARED_DIR, else ../shared beside the checkout)."""
    env = os.environ.get("GEM_SHARED_DIR")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parents[2].parent / "shared"


@pytest.fixture
def eplb_vectors():
    d = shared_dir() / "eplb-vectors"
    files = sorted(d.glob("*.json"))
    if not files:
        pytest.skip(f"{d} not found (the shared data folder is not beside this clone)")
    return files
