"""Model adapters behind one registry. Heavy libraries are imported only inside their adapter."""

from fer_fairness.specs import Registry

MODELS = Registry(
    what="model",
    group="fer_fairness.models",
    # The pip extra that brings each adapter's libraries: without it, one usage line naming the extra.
    extras={
        "openai": "openai",
        "gemini": "gemini",
        "clip-zeroshot": "clip",
        "clip-probe": "clip",
        "paligemma": "paligemma",
        "onnx": "onnx",
        "hf-classifier": "hf",
    },
    entries={
        "predictions": "fer_fairness.models.predictions:PredictionsModel",
        "hog-probe": "fer_fairness.models.probe:hog_probe",
        "openai": "fer_fairness.models.openai_chat:OpenAIChatModel",
        "gemini": "fer_fairness.models.gemini:GeminiModel",
        "clip-zeroshot": "fer_fairness.models.clip:ClipZeroShot",
        "clip-probe": "fer_fairness.models.clip:clip_probe",
        "paligemma": "fer_fairness.models.paligemma:PaliGemma",
        "onnx": "fer_fairness.models.onnx:OnnxModel",
        "hf-classifier": "fer_fairness.models.hf_classifier:HFClassifier",
    },
    usage={
        "predictions": "predictions:PATH.csv|PATH.parquet",
        "hog-probe": "hog-probe",
        "openai": "openai:MODEL",
        "gemini": "gemini:MODEL",
        "clip-zeroshot": "clip-zeroshot:ARCH@PRETRAINED",
        "clip-probe": "clip-probe:ARCH@PRETRAINED",
        "paligemma": "paligemma:REPO_OR_PATH",
        "onnx": "onnx:PATH.onnx",
        "hf-classifier": "hf-classifier:REPO_OR_PATH",
    },
)

__all__ = ["MODELS"]
