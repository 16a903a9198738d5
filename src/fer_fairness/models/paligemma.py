"""PaliGemma through transformers: the documented ``answer en ...`` prompt over a closed label set.

Decoding is greedy, and the answer is parsed strictly: after lowercasing and stripping, it must be
exactly one offered label or one simple synonym of one; anything else is ``unparseable``, with the
raw text kept. Never a random or default label.

Generated text is cached per (image bytes, rendered prompt, model content or hub commit, generation
settings, schema version), one durable file per sample written before parsing: a killed run resumes
with what is missing, and a parser change re-parses without generating again.

torch and transformers are imported when the adapter is built, never when this module is imported,
so the prompt and the parser can be read and tested without the ``paligemma`` extra.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Final
from urllib.parse import quote

import pandas as pd

from fer_fairness._cache import atomic_path, file_digest, stable_key
from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.labels import EMOTIONS
from fer_fairness.models._base import PredictContext
from fer_fairness.models._torch import (
    batched,
    check_model_folder,
    choose_device,
    hub_offline,
    load_failure,
    load_rgb,
    looks_like_path,
    versions,
    weights_identity,
)
from fer_fairness.models.parsing import WORD_TO_EMOTION
from fer_fairness.models.prompts import TEMPLATES
from fer_fairness.progress import bar as progress_bar
from fer_fairness.specs import Spec, check_options, choice_option, int_option

# Bump when what is stored, or how it is generated, changes: part of every cache key.
CACHE_SCHEMA = 1

PROMPT: Final = TEMPLATES["paligemma"]

UNPARSEABLE = "unparseable"
ERROR = "error"
DTYPES: Final = ("float32", "bfloat16", "float16")
_STRIP = " \t\r\n.!\"'`"  # whitespace, a final full stop, quotes: never part of a label


def render_prompt(labels: Sequence[str]) -> str:
    """The prompt for a dataset's label set (in the order given)."""
    return PROMPT.format(labels=", ".join(labels))


def parse_answer(text: str, labels: Sequence[str]) -> str:
    """The offered label ``text`` names, exactly (or by a simple synonym); else ``unparseable``."""
    answer = text.strip(_STRIP).lower()
    label = WORD_TO_EMOTION.get(answer, answer)  # one shared synonym table (parsing.py)
    return label if label in labels else UNPARSEABLE


class PaliGemma:
    """``paligemma:REPO_OR_PATH?revision=R&device=D&dtype=T&batch_size=N&max_new_tokens=N&name=N``.

    REPO_OR_PATH is a hub repo id (``google/paligemma-3b-mix-224``; from the local Hugging Face cache
    when HF_HUB_OFFLINE is set) or a transformers model folder (absolute, ./ or ~ path), which loads
    with ``local_files_only``.
    """

    OPTIONS = ("revision", "device", "dtype", "batch_size", "max_new_tokens", "name")

    def __init__(self, spec: Spec) -> None:
        check_options(spec, self.OPTIONS, what="model")
        if not spec.target:
            raise ConfigError(
                f"model '{spec.text}': write paligemma:REPO_OR_PATH, e.g. paligemma:google/paligemma-3b-mix-224 "
                "or paligemma:/models/paligemma"
            )
        self.batch_size = int_option(spec, "batch_size", 8)
        self.max_new_tokens = int_option(spec, "max_new_tokens", 8)
        self.revision = spec.option("revision")
        requested_dtype = choice_option(spec, "dtype", DTYPES)
        self.local = looks_like_path(spec.target)
        if self.local and self.revision:
            raise ConfigError(f"model '{spec.text}': option revision applies to hub repos, not to a local folder")
        self.source = str(Path(spec.target).expanduser().resolve()) if self.local else spec.target
        self.device = choose_device(spec.option("device"), what="paligemma")
        # bfloat16 is how PaliGemma is served on GPUs; CPUs get float32 (bfloat16 matmuls are slow there).
        self.dtype = requested_dtype or ("bfloat16" if self.device.startswith("cuda") else "float32")
        self.name = spec.option("name") or f"paligemma:{Path(self.source).name if self.local else self.source}"
        self._versions = versions("torch", "transformers", "tokenizers")
        self.model, self.processor, self.identity = self._load()
        self._usage: Counter[str] = Counter()
        # How a Ray actor rebuilds this model (engines.RayEngine). The dtype is pinned: it is part of the
        # cache key, and an actor on another device would otherwise choose another one.
        query = {k: v for k, v in spec.options.items() if k not in ("name", "dtype")}
        query["dtype"] = self.dtype
        self.spec_text = f"paligemma:{self.source}?" + "&".join(
            f"{k}={quote(v, safe='')}" for k, v in sorted(query.items())
        )

    def _load(self):
        import torch
        from transformers import AutoConfig, AutoProcessor, PaliGemmaForConditionalGeneration

        if self.local:
            check_model_folder(
                self.source,
                what="paligemma",
                holds="a transformers model folder (config.json, weights, tokenizer and processor files)",
            )
        local_only = self.local or hub_offline()
        where = dict(local_files_only=local_only, revision=self.revision)
        try:
            config = AutoConfig.from_pretrained(self.source, **where)
            if config.model_type != "paligemma":
                raise ModelError(f"paligemma: {self.source} holds a '{config.model_type}' model, not PaliGemma")
            processor = AutoProcessor.from_pretrained(self.source, **where)
            model = PaliGemmaForConditionalGeneration.from_pretrained(
                self.source, dtype=getattr(torch, self.dtype), **where
            )
        except (OSError, ValueError) as error:  # transformers' missing file / unrecognised config
            raise ModelError(self._load_failure(error)) from error
        identity = weights_identity(self.source, self.revision, local=self.local)
        return model.to(self.device).eval(), processor, identity

    def _load_failure(self, error: Exception) -> str:
        return load_failure("paligemma", self.source, error, local=self.local)

    def settings(self) -> dict[str, object]:
        """Everything that decides the generated text (the device only through the dtype)."""
        return {
            "schema": CACHE_SCHEMA,
            "model": self.identity,
            "dtype": self.dtype,
            "decoding": "greedy",
            "max_new_tokens": self.max_new_tokens,
            "transformers": self._versions["transformers"],
            "torch": self._versions["torch"],
        }

    def describe(self) -> dict[str, str]:
        return {
            "kind": "paligemma",
            "source": self.source,
            "weights": self.identity,
            "device": self.device,
            "dtype": self.dtype,
            "decoding": f"greedy (do_sample=False, num_beams=1), max_new_tokens={self.max_new_tokens}",
            "prompt": PROMPT,
            **self._versions,
        }

    def prompts(self) -> dict[str, str]:
        return {
            "prompt": PROMPT,
            "parser": "exactly one offered label after lowercasing and stripping; synonyms "
            + ", ".join(f"{word}->{label}" for word, label in WORD_TO_EMOTION.items() if word != label),
        }

    def usage(self) -> dict[str, int]:
        """Generations made, cache hits and non-answers by kind, over every predict so far."""
        return {key: self._usage[key] for key in ("calls", "cache_hits", UNPARSEABLE, ERROR)}

    def predict(self, dataset: Dataset, *, context: PredictContext) -> pd.DataFrame:
        labels = [label for label in dataset.emotions if label in EMOTIONS]
        prompt = render_prompt(labels)
        paths = [Path(dataset.root) / p for p in dataset.samples["path"]]
        keys = [self._key(path, prompt) for path in paths]
        cache = Path(context.cache_dir) / "paligemma"
        raws: dict[int, str] = {}
        for index, key in enumerate(keys):
            stored = _read(cache / key[:2] / f"{key}.json")
            if stored is not None:
                raws[index] = stored
        self._usage["cache_hits"] += len(raws)
        missing = [i for i in range(len(paths)) if i not in raws]
        errors = self._generate(missing, paths, keys, prompt, cache, raws, context=context)
        if errors and len(errors) == len(paths):
            first = next(iter(errors.values()))
            raise ModelError(f"{self.name}: generation failed for every sample; the first: {first}")
        outcomes, raw_column = [], []
        for index in range(len(paths)):
            if index in errors:
                outcomes.append(ERROR)
                raw_column.append(errors[index])
            else:
                outcomes.append(parse_answer(raws[index], labels))
                raw_column.append(raws[index])
        counted = Counter(outcomes)
        self._usage[UNPARSEABLE] += counted[UNPARSEABLE]
        self._usage[ERROR] += counted[ERROR]
        return pd.DataFrame(
            {"sample_id": dataset.samples["sample_id"].astype(str).to_numpy(), "outcome": outcomes, "raw": raw_column}
        )

    def _key(self, path: Path, prompt: str) -> str:
        try:
            image = file_digest(path)
        except OSError as error:
            raise ModelError(f"paligemma: cannot read image {path}: {error.strerror or error}") from error
        return stable_key(self.settings(), prompt, image, length=32)

    def _generate(self, indices, paths, keys, prompt, cache, raws, *, context: PredictContext) -> dict[int, str]:
        """Generate for ``indices``, store each answer as it comes; return the errors (never cached)."""
        errors: dict[int, str] = {}
        bar = progress_bar(len(indices), f"{self.name}", context.progress)
        with bar:
            for chunk, answers in self._batches(indices, paths, prompt, context.engine, bar):
                for index, answer in zip(chunk, answers, strict=True):
                    if "error" in answer:  # kept as the sample's outcome, with the reason
                        errors[index] = answer["error"]
                        continue
                    _write(cache / keys[index][:2] / f"{keys[index]}.json", answer["raw"])
                    raws[index] = answer["raw"]
                    self._usage["calls"] += 1
                bar.update(len(chunk))
        return errors

    def _batches(self, indices, paths, prompt, engine, bar):
        """(sample positions, answers) per batch of ``indices``: here, or on the engine's actors."""
        if engine is None:
            for chunk in batched(indices, self.batch_size):
                yield chunk, self._call([paths[i] for i in chunk], prompt)
            return
        wanted = [paths[i] for i in indices]
        for positions, answers in engine.batches(
            self, wanted, batch_size=self.batch_size, args=(prompt,), progress=bar
        ):
            yield [indices[p] for p in positions], answers

    def _call(self, paths: Sequence[Path], prompt: str) -> list[dict[str, str]]:
        """One batch, here or on an actor: per image ``{"raw": text}`` or ``{"error": reason}``."""
        images = [load_rgb(Path(p), what="paligemma") for p in paths]
        try:
            return [{"raw": answer} for answer in self.generate(images, prompt)]
        except Exception:  # one bad sample must not sink the batch: retry one by one
            answers = []
            for image in images:
                try:
                    answers.extend({"raw": answer} for answer in self.generate([image], prompt))
                except Exception as error:
                    answers.append({"error": f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"})
            return answers

    def generate(self, images: Sequence, prompt: str) -> list[str]:
        """Greedy answers for PIL images, all with the same prompt (so no padding is needed)."""
        import torch

        # numpy out, torch here: the processor's fine-tuning labels, built from torch tensors, would warn
        encoded = self.processor(
            images=list(images), text=[f"{self.processor.image_token}{prompt}"] * len(images), return_tensors="np"
        )
        encoded.pop("labels", None)  # for fine-tuning; generation needs none
        inputs = {key: torch.as_tensor(value).to(self.device) for key, value in encoded.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=self.processor.tokenizer.pad_token_id,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)


def _read(path: Path) -> str | None:
    """The stored raw answer, or None when there is none (or it is unreadable: then it is redone)."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    raw = stored.get("raw") if isinstance(stored, dict) else None
    return raw if isinstance(raw, str) else None


def _write(path: Path, raw: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps({"schema": CACHE_SCHEMA, "raw": raw}), encoding="utf-8")
