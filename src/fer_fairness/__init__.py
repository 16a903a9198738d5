"""fer-fairness: a pytest gate for demographic disparities in facial expression recognition."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fer-fairness")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
