"""A Hugging Face image classifier (``AutoModelForImageClassification``) as a model under test.

The model's own label names (``config.id2label``) are read through the one alias table
(labels.ALIASES: happy, angry, sad, surprised, fearful, disgusted, neutral, contempt ...), with
``?map=`` for names it lacks (``LABEL_0``). The scores are the softmax of the logits, kept per label.
Batching, progress and caching come from BatchModel, keyed by the weights' identity: the folder's
content digest, or the hub snapshot's commit.

torch and transformers are imported when the adapter is built, never when this module is imported;
without them, MODELS.build names the ``hf`` extra to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.labels import EMOTIONS, canonical
from fer_fairness.models._batch import BatchModel, spec_for_workers
from fer_fairness.models._torch import (
    check_model_folder,
    choose_device,
    hub_offline,
    load_failure,
    looks_like_path,
    versions,
    weights_identity,
)
from fer_fairness.specs import Spec, check_options, int_option

WHAT = "hf-classifier"


class HFClassifier(BatchModel):
    """``hf-classifier:REPO_OR_PATH?revision=R&device=D&batch_size=N&name=N&map=LABEL=emotion,...``.

    REPO_OR_PATH is a hub repo id (from the local Hugging Face cache when HF_HUB_OFFLINE is set) or
    a transformers model folder (absolute, ./ or ~ path), which loads with ``local_files_only``.
    """

    OPTIONS = ("revision", "device", "batch_size", "name", "map")

    def __init__(self, spec: Spec) -> None:
        check_options(spec, self.OPTIONS, what="model")
        if not spec.target:
            raise ConfigError(
                f"model '{spec.text}': write hf-classifier:REPO_OR_PATH, e.g. hf-classifier:/models/fer-vit "
                "or hf-classifier:ORG/REPO"
            )
        batch_size = int_option(spec, "batch_size", 32)
        self.revision = spec.option("revision")
        self.local = looks_like_path(spec.target)
        if self.local and self.revision:
            raise ConfigError(f"model '{spec.text}': option revision applies to hub repos, not to a local folder")
        self.source = str(Path(spec.target).expanduser().resolve()) if self.local else spec.target
        label_map = _label_map(spec)
        self.device = choose_device(spec.option("device"), what=WHAT)
        self._versions = versions("torch", "transformers")
        self.model, self.processor, identity = self._load()
        names = _label_names(self.model.config, source=self.source)
        _check_map(spec, label_map, names)
        _check_labels(names, label_map, source=self.source)
        name = spec.option("name") or f"{WHAT}:{Path(self.source).name if self.local else self.source}"
        # Not the folder's path: the weights are known by content, so a carried cache stays valid.
        settings: dict[str, Any] = dict(self._versions)
        if label_map:
            settings["map"] = ",".join(f"{k}={v}" for k, v in label_map.items())
        super().__init__(
            name,
            self.scores,
            labels=[label_map.get(n, n) for n in names],
            batch_size=batch_size,
            version=identity,
            settings=settings,
            kind=WHAT,
        )
        # The model's own names in answers and the report (``LABEL_0:0.83``), the mapping beside them.
        self.label_names = tuple(names)
        self.spec_text = spec_for_workers(spec, self.source)

    def _load(self):
        # An ImportError here goes up to MODELS.build, which names the 'hf' extra to install.
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

        if self.local:
            check_model_folder(
                self.source,
                what=WHAT,
                holds="a transformers image-classification folder (config.json, weights, preprocessor_config.json)",
            )
        where = dict(local_files_only=self.local or hub_offline(), revision=self.revision)
        config = None
        try:
            config = AutoConfig.from_pretrained(self.source, **where)
            model = AutoModelForImageClassification.from_pretrained(self.source, **where)
            processor = AutoImageProcessor.from_pretrained(self.source, **where)
        except (OSError, ValueError) as error:  # transformers' missing file / unrecognised config
            raise ModelError(self._load_failure(error, config=config)) from error
        identity = weights_identity(self.source, self.revision, local=self.local)
        return model.to(self.device).eval(), processor, identity

    def _load_failure(self, error: Exception, *, config: Any) -> str:
        reason = " ".join(str(error).split())[:300]
        if config is not None and "Unrecognized configuration class" in str(error):
            return f"{WHAT}: {self.source} holds a '{config.model_type}' model, not an image classifier ({reason})"
        return load_failure(WHAT, self.source, error, local=self.local)

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "source": self.source, "device": self.device}

    def scores(self, images: list[Any]) -> Any:
        """Softmax of the logits for a batch of PIL images, one row per image (in id2label order)."""
        import torch

        inputs = self.processor(images=images, return_tensors="pt")
        inputs = {
            key: value.to(self.device, self.model.dtype) if value.is_floating_point() else value.to(self.device)
            for key, value in inputs.items()
        }
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()


def _label_map(spec: Spec) -> dict[str, str]:
    """``?map=LABEL_0=anger,LABEL_1=happy`` as {model label: canonical emotion}; split before
    %-unescaping, so a label holding "," or "=" is written %2C or %3D."""
    text = spec.raw_options.get("map", spec.options.get("map"))
    if text is None:
        return {}
    mapping: dict[str, str] = {}
    for entry in filter(str.strip, text.split(",")):
        old, eq, new = entry.partition("=")
        old, new = unquote(old).strip(), unquote(new).strip()
        if not eq or not old or not new:
            raise ConfigError(
                f"model '{spec.text}': cannot read '{unquote(entry)}' in ?map=; write ?map=LABEL=emotion,LABEL=emotion "
                "(e.g. ?map=LABEL_0=anger,LABEL_1=happiness)"
            )
        emotion = canonical(new)
        if emotion is None:
            raise ConfigError(
                f"model '{spec.text}': ?map= maps '{old}' to '{new}', which names no emotion "
                f"({', '.join(EMOTIONS)}, or a word such as happy or angry)"
            )
        if mapping.get(old, emotion) != emotion:
            raise ConfigError(f"model '{spec.text}': ?map= maps '{old}' to both '{mapping[old]}' and '{emotion}'")
        mapping[old] = emotion
    return mapping


def _check_map(spec: Spec, label_map: dict[str, str], names: list[str]) -> None:
    """A ?map= entry for a label the model lacks is a typo; running without it would be silent."""
    strangers = [k for k in label_map if k not in names]
    if strangers:
        raise ConfigError(
            f"model '{spec.text}': ?map= names {', '.join(map(repr, strangers))}, which the model does not have "
            f"(its labels: {', '.join(names)})"
        )


def _check_labels(names: list[str], label_map: dict[str, str], *, source: str) -> None:
    """Every label names one emotion (by the alias table or ?map=), no emotion two labels; said in the
    model's own names, which the user can look up in its config.json."""
    unknown = [n for n in names if n not in label_map and canonical(n) is None]
    if unknown:
        raise ModelError(
            f"{WHAT}: {source} has label(s) {', '.join(map(repr, unknown))} that name no emotion this suite "
            f"knows ({', '.join(EMOTIONS)}, or a word such as happy or angry); map them, e.g. "
            f"?map={unknown[0]}=anger"
        )
    meanings = {n: label_map.get(n) or canonical(n) for n in names}
    repeated = sorted({e for e in meanings.values() if list(meanings.values()).count(e) > 1})
    if repeated:  # said here, in the model's own names, rather than in the mapped ones
        detail = "; ".join(f"{', '.join(repr(n) for n in names if meanings[n] == e)} all mean {e}" for e in repeated)
        raise ModelError(f"{WHAT}: {source} has two labels for one emotion ({detail}); map one elsewhere")


def _label_names(config: Any, *, source: str) -> list[str]:
    """``config.id2label`` in class-index order; a gap in the indices is a broken config."""
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    if not id2label or sorted(id2label) != list(range(len(id2label))):
        raise ModelError(
            f"{WHAT}: {source} has no usable id2label in its config.json (need labels 0..N-1; got "
            f"{sorted(id2label) or 'none'})"
        )
    return [id2label[i] for i in range(len(id2label))]
