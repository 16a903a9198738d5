"""Shared test helpers: the pytester plugin and small builders of studies (manifest + predictions)."""

import os

from hypothesis import settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a model hub

pytest_plugins = ["pytester"]

# CI explores the same examples every run (a property that fails there fails for everyone, and
# reproducibly); locally hypothesis keeps searching new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# pytester's in-process runs restore sys.modules afterwards; extension modules (numpy, pyarrow,
# scikit-learn) cannot be imported twice in one process, so load them here, before any snapshot.
import fer_fairness.pipeline  # noqa: E402,F401
