import os
import sys
from pathlib import Path

import pytest
import torch

# The helpers beside the tests (nets_zoo) import by their plain names too.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Two test processes (pytest -n 2, the README's command) share the two cores: one thread each.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """One CPU thread: fixes the float summation order, for bit-for-bit comparisons (README, "Known limits")."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
