"""Dataset loaders behind one registry; each returns a Dataset (see _table) holding the sample table.

Kept free of pandas and friends so that the plugin loads fast: loaders import on use.
"""

from fer_fairness.specs import Registry

DATASETS = Registry(
    what="dataset",
    entries={
        "manifest": "fer_fairness.datasets.manifest:load_manifest",
        "synthetic": "fer_fairness.datasets.synthetic:from_spec",
    },
    usage={"manifest": "manifest:PATH.csv|PATH.parquet", "synthetic": "synthetic"},
)

__all__ = ["DATASETS"]
