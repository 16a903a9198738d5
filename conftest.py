"""Choices local to this repository would go here; the fer-fairness plugin itself is registered by
its entry point (pytest11) and works without this file.

Deliberately empty for now: the offline model-hub setting (HF_HUB_OFFLINE=1) belongs to the tool's
own tests (tests/conftest.py) and the Makefile, not here, so that `pytest fairness_tests` in this
repository may still download real weights for a real evaluation.
"""
