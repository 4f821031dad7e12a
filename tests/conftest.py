import os

import pytest
import torch
from hypothesis import settings

# Property tests: enough examples to find broken edge cases, few enough for CI on 2 cores.
settings.register_profile("book", max_examples=60, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "book"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
