"""tests/gpu: every test here needs CUDA; without it each is skipped with the reason (the ``gpu`` marker)."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    here = str(__file__).rsplit("/", 1)[0]
    no_cuda = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False on this machine)")
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.gpu)
            if not torch.cuda.is_available():
                item.add_marker(no_cuda)
