import os

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(params=[0, 1])
def seed(request) -> int:
    """Tests taking ``seed`` must pass for any seed; CI runs two."""
    return int(os.environ.get("NEURALFACTOR_TEST_SEED", 0)) * 1000 + request.param


@pytest.fixture
def gen(seed) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests use small problems: one torch/BLAS thread is fastest and avoids oversubscribing
    the 2-core CI machine (every test, every package)."""
    from neuralfactor.core.timing import pinned_threads

    with pinned_threads(1):
        yield
