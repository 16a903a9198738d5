"""Model adapters behind one registry. Heavy libraries are imported only inside their adapter."""

from fer_fairness.specs import Registry

MODELS = Registry(
    what="model",
    entries={
        "predictions": "fer_fairness.models.predictions:PredictionsModel",
        "hog-probe": "fer_fairness.models.probe:hog_probe",
    },
    usage={"predictions": "predictions:PATH.csv|PATH.parquet", "hog-probe": "hog-probe"},
)

__all__ = ["MODELS"]
