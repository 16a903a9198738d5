"""Simulation harness: measures the verdicts' promises by running the real product on simulated data.

Run ``python -m simulations --quick`` (minutes) or ``python -m simulations`` (the full sweep).
"""
