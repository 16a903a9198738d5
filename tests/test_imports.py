"""Loading the plugin (every pytest run, `pytest --help` included) must not load the heavy stack."""

import subprocess
import sys

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
