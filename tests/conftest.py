import numpy as np
import pytest

import neurec


@pytest.fixture(autouse=True)
def _seed():
    neurec.utils.set_random_seed(1234)
    yield


@pytest.fixture
def one_thread():
    old = neurec.get_num_threads()
    neurec.set_num_threads(1)
    yield
    neurec.set_num_threads(old)
