"""Shared fixtures. CamVid lives outside the repository (../shared) and only exists on CI/dev machines."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    root = (REPO_ROOT / ".." / "shared" / "data" / "camvid").resolve()
    if not (root / "train.txt").is_file():
        pytest.skip(
            "CamVid not found at ../shared/data/camvid (only CI and developer machines have ../shared)"
        )
    return root
