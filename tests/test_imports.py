"""Loading the plugin (every pytest run, `pytest --help` included) must not load the heavy stack."""

import subprocess
import sys
from pathlib import Path

HEAVY = (
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "sklearn",
    "torch",
    "open_clip",
    "transformers",
    "openai",
    "google.genai",
    "matplotlib",
)


def test_the_plugin_and_registries_load_without_heavy_libraries():
    code = (
        "import sys, fer_fairness.plugin, fer_fairness.datasets, fer_fairness.models;"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_no_test_module_here_shares_a_name_with_a_product_test_module():
    """tests/ has no __init__.py, so its top-level modules import by basename; projects the tests build
    copy fairness_tests/ and, run in-process, would meet "import file mismatch" on a shared name."""
    root = Path(__file__).resolve().parents[1]
    ours = {p.name for p in (root / "tests").glob("test_*.py")}
    product = {p.name for p in (root / "fairness_tests").glob("test_*.py")}
    assert not ours & product
