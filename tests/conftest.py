import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks run faster on one torch thread, most of all on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
