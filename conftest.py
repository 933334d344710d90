"""pytest setup shared by the unit tests and nbval on solutions/."""
import os

os.environ.setdefault("TQDM_DISABLE", "1")


def pytest_collectstart(collector):
    # nbval: warnings and progress bars go to stderr and vary between machines; never compare them.
    if hasattr(collector, "skip_compare"):
        collector.skip_compare = tuple(collector.skip_compare) + ("stderr",)
