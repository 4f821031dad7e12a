import os

import pytest
import torch
from hypothesis import settings

# Property tests: enough examples to find broken edge cases, few enough for CI on 2 cores.
settings.register_profile("book", max_examples=60, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "book"))

# The models under test are tiny: one intra-op thread is faster than two spinning threads, and it
# is what attnlib.reproducible() sets for the notebooks.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
