"""Shared hypothesis settings and strategies for the statistics tests."""

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# For properties whose every example costs milliseconds (root finding; statsmodels' Holm runs gc).
FEW = settings(PROPERTY, max_examples=60)

confidences = st.sampled_from([0.8, 0.9, 0.95, 0.99, 0.999])


@st.composite
def counts(draw, max_n: int = 300, min_n: int = 0) -> tuple[int, int]:
    """(successes, n) with 0 <= successes <= n, biased toward the edges 0, 1 and n."""
    n = draw(st.one_of(st.integers(min_n, max(min_n, 2)), st.integers(min_n, max_n)))
    x = draw(st.one_of(st.sampled_from([0, n, min(1, n), max(n - 1, 0)]), st.integers(0, n)))
    return x, n


@st.composite
def interior_counts(draw, max_n: int = 300) -> tuple[int, int]:
    """(successes, n) with 0 < successes < n: drawn directly, so no example is filtered away."""
    n = draw(st.one_of(st.integers(2, 4), st.integers(2, max_n)))
    return draw(st.one_of(st.sampled_from([1, n - 1]), st.integers(1, n - 1))), n
