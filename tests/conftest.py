"""Shared test helpers: the pytester plugin and small builders of studies (manifest + predictions)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a model hub

pytest_plugins = ["pytester"]

# pytester's in-process runs restore sys.modules afterwards; extension modules (numpy, pyarrow,
# scikit-learn) cannot be imported twice in one process, so load them here, before any snapshot.
import fer_fairness.pipeline  # noqa: E402,F401
