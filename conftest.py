"""pytest setup shared by the unit tests and nbval on solutions/."""
import os

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")


def pytest_sessionstart(session):
    # One clear line instead of dozens of failures when the assets are not there.
    from tp_utils import assets

    for name in assets.REGISTRY:
        try:
            assets.fetch(name)
        except assets.AssetError as err:
            what = "is corrupted" if "corrupted" in str(err) else "is missing and could not be downloaded"
            pytest.exit(f"{name} {what} in {assets.data_dir()}: set TP_DATA_DIR to the folder that "
                        "holds the course's assets, or run `tp fetch` online once", returncode=4)


def pytest_collectstart(collector):
    # nbval: warnings and progress bars go to stderr and vary between machines; never compare them.
    if hasattr(collector, "skip_compare"):
        collector.skip_compare = tuple(collector.skip_compare) + ("stderr",)
