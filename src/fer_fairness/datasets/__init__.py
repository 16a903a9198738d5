"""Dataset loaders behind one registry; each returns a Dataset (see _table) holding the sample table.

Kept free of pandas and friends so that the plugin loads fast: loaders import on use.
"""

from fer_fairness.specs import Registry

DATASETS = Registry(
    what="dataset",
    group="fer_fairness.datasets",
    entries={
        "manifest": "fer_fairness.datasets.manifest:load_manifest",
        "synthetic": "fer_fairness.datasets.synthetic:from_spec",
        "cfd": "fer_fairness.datasets.cfd:load_cfd",
        "radiate": "fer_fairness.datasets.radiate:load_radiate",
        "faceplace": "fer_fairness.datasets.faceplace:load_faceplace",
        "rafdb": "fer_fairness.datasets.rafdb:load_rafdb",
        # The study's subsets (arXiv 2408.14842), each checking its image count.
        "radiate-7": "fer_fairness.datasets.views:load_view",
        "faceplace-7": "fer_fairness.datasets.views:load_view",
        "cfd-4": "fer_fairness.datasets.views:load_view",
    },
    usage={
        "manifest": "manifest:PATH.csv|PATH.parquet",
        "synthetic": "synthetic",
        "cfd": "cfd:ROOT",
        "radiate": "radiate:ROOT",
        "faceplace": "faceplace:ROOT",
        "rafdb": "rafdb:ROOT",
        "radiate-7": "radiate-7:ROOT",
        "faceplace-7": "faceplace-7:ROOT",
        "cfd-4": "cfd-4:ROOT",
    },
)

__all__ = ["DATASETS"]
