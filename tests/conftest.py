import os
from pathlib import Path

import pytest
import torch

import tp_utils as tp

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Derived files (the decoded state dict) go to a fresh cache, as on a new machine."""
    old = os.environ.get("TP_CACHE_DIR")
    os.environ["TP_CACHE_DIR"] = str(tmp_path_factory.mktemp("tp-cache"))
    yield
    if old is None:
        os.environ.pop("TP_CACHE_DIR", None)
    else:
        os.environ["TP_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def model(_private_cache):
    return tp.load_model()


@pytest.fixture
def offline(monkeypatch):
    """Make every download fail as it does without a network."""
    import pooch
    import torchvision.models._api as api

    def refuse(*args, **kwargs):
        raise ConnectionError("network unreachable (simulated)")

    monkeypatch.setattr(pooch.Pooch, "fetch", lambda self, *a, **k: refuse())
    monkeypatch.setattr(api, "load_state_dict_from_url", refuse)


def top1(model, name):
    with torch.no_grad():
        p = model(tp.preprocess(name)).softmax(1)[0]
    return tp.class_name(int(p.argmax())), float(p.max())
