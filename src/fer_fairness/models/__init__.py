"""Model adapters behind one registry. Heavy libraries are imported only inside their adapter."""

from fer_fairness.specs import Registry

MODELS = Registry(
    what="model",
    entries={
        "predictions": "fer_fairness.models.predictions:PredictionsModel",
        "hog-probe": "fer_fairness.models.probe:hog_probe",
        "openai": "fer_fairness.models.openai_chat:OpenAIChatModel",
        "gemini": "fer_fairness.models.gemini:GeminiModel",
        "clip-zeroshot": "fer_fairness.models.clip:ClipZeroShot",
        "clip-probe": "fer_fairness.models.clip:clip_probe",
        "paligemma": "fer_fairness.models.paligemma:PaliGemma",
    },
    usage={
        "predictions": "predictions:PATH.csv|PATH.parquet",
        "hog-probe": "hog-probe",
        "openai": "openai:MODEL",
        "gemini": "gemini:MODEL",
        "clip-zeroshot": "clip-zeroshot:ARCH@PRETRAINED",
        "clip-probe": "clip-probe:ARCH@PRETRAINED",
        "paligemma": "paligemma:REPO_OR_PATH",
    },
)

__all__ = ["MODELS"]
