import os

import pytest
import torch

# Two cores shared by pytest-xdist workers: one intra-op thread each keeps runs fast and deterministic.
torch.set_num_threads(1)
os.environ.setdefault("GANKIT_NO_DOWNLOAD", "1")


@pytest.fixture
def tmp_runs(tmp_path):
    return tmp_path / "runs"
