"""Choices local to this repository. The fer-fairness plugin itself is registered by its entry point
(pytest11) and works without this file."""

import os

# Nothing in this repository's runs may download model weights: fail fast instead of waiting on a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
