"""One device helper and one seeding helper (no module-level device globals)."""
from __future__ import annotations

import random

import numpy as np
import torch


def get_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` if given ("cpu", "cuda", "cuda:1", "mps"),
    else the CUDA GPU with the most free memory, else Apple MPS, else the CPU."""
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
        return torch.device("cuda", int(np.argmax(free)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); returns a torch generator seeded the same."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
