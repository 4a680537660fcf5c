import os

import pytest

import neurec

# .ci/package.sh runs the suite against an installed wheel or an in-place build:
# make sure that is what was imported, not a source tree found first on sys.path.
_expected = os.environ.get("NEUREC_TEST_IMPORT_FROM")
if _expected and not os.path.realpath(neurec.__file__).startswith(os.path.realpath(_expected)):
    raise RuntimeError(f"neurec was imported from {neurec.__file__}, not from {_expected}")


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
