import os
import tempfile
import warnings

import numpy as np
import pytest

# The test session gets its own cache (Saha tables, generated nuclear networks and their numba
# cache), set before any dask worker starts so the workers share it; the user's cache is untouched.
os.environ["THERMOEMU_CACHE"] = tempfile.mkdtemp(prefix="thermoemu-test-cache-")

from thermoemu.primordial.physics.network import PrimordialNetwork
from thermoemu.primordial.sampling import sample_region

warnings.filterwarnings("ignore", category=RuntimeWarning)


@pytest.fixture(scope="session")
def network():
    return PrimordialNetwork()


@pytest.fixture(scope="session")
def exact_network():
    return PrimordialNetwork(coefficients="exact")


@pytest.fixture(scope="session")
def dask_client():
    """A real dask LocalCluster with two single-threaded worker processes."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def region_states(region, n, seed=0):
    return sample_region(region, n, np.random.default_rng(seed))
