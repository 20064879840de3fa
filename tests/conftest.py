import sys
from pathlib import Path

import pytest
import torch

# The helpers beside the tests (nets_zoo) import by their plain names too.
sys.path.insert(0, str(Path(__file__).resolve().parent))

torch.set_num_threads(2)


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
