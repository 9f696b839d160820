"""Shared fixtures. CamVid lives outside the repository (../shared) and only exists on CI/dev machines."""

import os
from pathlib import Path

# Tests run tiny models, where a second intra-op thread buys nothing, and on a loaded 2-core machine thread
# contention made single runs 10x slower. Subprocesses (CLI, torchrun tests) inherit the environment variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    root = (REPO_ROOT / ".." / "shared" / "data" / "camvid").resolve()
    if not (root / "train.txt").is_file():
        pytest.skip(
            "CamVid not found at ../shared/data/camvid (only CI and developer machines have ../shared)"
        )
    return root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test reads CamVid exactly when it is marked ``camvid``: a clone without ../shared skips those only."""
    for item in items:
        reads = "camvid_root" in getattr(item, "fixturenames", ())
        marked = item.get_closest_marker("camvid") is not None
        if reads != marked:
            problem = "uses camvid_root without" if reads else "has no camvid_root but carries"
            raise pytest.UsageError(f"{item.nodeid}: {problem} @pytest.mark.camvid")
