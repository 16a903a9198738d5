"""A model from a batch function: images in, labels or per-label scores out.

This is the shape most FER models have (an ONNX graph, a Hugging Face image classifier, a team's own
network behind a Python function), so they all share this one adapter: it reads each image once,
calls the function a batch at a time with a progress bar, maps the model's label names to the
canonical emotions (labels.canonical), keeps per-label scores, and caches every answer by image
content and model identity in the shared response cache, so a killed run resumes with only the
missing images and a warm re-run makes no model call.

A label outside the dataset's emotions is kept as the answer (a 7-class model shown a face of an
emotion it lacks, or answering "contempt" on a set without it, is wrong, and counted so).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import ModelError
from fer_fairness.labels import EMOTIONS, MODEL_NON_ANSWERS, canonical
from fer_fairness.models._base import SCORE_PREFIX, PredictContext
from fer_fairness.models.response_cache import ResponseCache, cache_key, content_digest
from fer_fairness.progress import bar as progress_bar
from fer_fairness.specs import Spec

# Images in, per image either a label (str) or one score per label (a row of a 2-D array).
PredictBatch = Callable[[list[Any]], Any]


def canonical_labels(names: Sequence[str], *, what: str) -> tuple[str, ...]:
    """A model's label names as canonical emotions; an unknown or repeated one is a ModelError naming it."""
    mapped = []
    for name in names:
        emotion = canonical(str(name))
        if emotion is None:
            raise ModelError(
                f"{what}: label {str(name)!r} names no emotion this suite knows ({', '.join(EMOTIONS)}, or a word "
                "such as happy, angry, sad, surprised, fearful, disgusted); rename it in the model's label list"
            )
        mapped.append(emotion)
    repeated = sorted({e for e in mapped if mapped.count(e) > 1})
    if repeated:
        names_of = {e: [str(n) for n, m in zip(names, mapped, strict=True) if m == e] for e in repeated}
        detail = "; ".join(f"{', '.join(map(repr, v))} all mean {e}" for e, v in names_of.items())
        raise ModelError(f"{what}: two labels name one emotion ({detail}); give each emotion one label")
    return tuple(mapped)


def spec_for_workers(spec: Spec, target: str) -> str:
    """The spec again with an absolute target, so a worker process elsewhere (a Ray actor) rebuilds the
    same model from it (engines.RayEngine): relative paths would resolve against the worker's folder."""
    query = spec.text.partition("?")[2]
    return f"{spec.kind}:{target}" + (f"?{query}" if query else "")


class BatchModel:
    """A model under test from a function over a batch of images.

    ``predict_batch(images)`` gets a list of PIL images (RGB, or the ``image_mode`` asked for) and
    returns, per image, a label name (``"happy"``, ``"anger"``, or a non-answer such as
    ``"refused"``) or, when ``labels`` is given, a 2-D array of one score per label (probabilities or
    logits; the answer is the highest). ``version`` identifies the weights (a checkpoint digest, a
    release tag): answers are cached under it, so change it when the model changes; without it
    nothing is cached. ``settings`` are further facts that change answers (input size,
    normalisation) and join the cache key and the report.
    """

    def __init__(
        self,
        name: str,
        predict_batch: PredictBatch,
        *,
        labels: Sequence[str] | None = None,
        batch_size: int = 32,
        version: str | None = None,
        image_mode: str = "RGB",
        settings: Mapping[str, Any] | None = None,
        kind: str = "python",
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ModelError(f"a model needs a non-empty name; got {name!r}")
        if not callable(predict_batch):
            raise ModelError(f"model '{name}': predict_batch must be callable; got {type(predict_batch).__name__}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ModelError(f"model '{name}': batch_size must be a positive integer; got {batch_size!r}")
        self.name = name
        self.predict_batch = predict_batch
        self.labels = None if labels is None else canonical_labels(list(labels), what=f"model '{name}'")
        self.label_names = None if labels is None else tuple(map(str, labels))
        self.batch_size = batch_size
        self.version = version
        self.image_mode = image_mode
        self.settings = dict(settings or {})
        self.kind = kind
        self.spec_text: str | None = None  # set by adapters built from a spec: workers rebuild from it
        self._usage = {"calls": 0, "cache_hits": 0}

    def describe(self) -> dict[str, str]:
        facts = {"kind": self.kind, "batch_size": str(self.batch_size), "version": self.version or "not cached"}
        if self.label_names is not None:
            facts["labels"] = ", ".join(
                f"{n}->{e}" if n != e else e for n, e in zip(self.label_names, self.labels, strict=True)
            )
        facts.update({k: str(v) for k, v in self.settings.items()})
        return facts

    def usage(self) -> dict[str, int]:
        return dict(self._usage)

    # -- predicting --------------------------------------------------------------------------

    def predict(self, dataset: Dataset, *, context: PredictContext) -> pd.DataFrame:
        paths = [Path(dataset.root) / p for p in dataset.samples["path"]]
        answers: list[Any] = [None] * len(paths)
        keys = [self._key(path) for path in paths] if self.version is not None else None
        cache = ResponseCache.in_dir(context.cache_dir) if keys is not None else None
        try:
            if cache is not None:
                for index, entry in _lookup(cache, keys).items():
                    answers[index] = entry
                self._usage["cache_hits"] += sum(a is not None for a in answers)
            missing = [i for i, a in enumerate(answers) if a is None]
            bar = progress_bar(len(missing), self.name, context.progress)
            with bar:
                for chunk, results in self._batches(paths, missing, context.engine, bar):
                    for index, result in zip(chunk, results, strict=True):
                        answers[index] = result
                    if cache is not None:  # stored batch by batch: a killed run resumes with what is missing
                        cache.put_many(((keys[i], answers[i]) for i in chunk), model=self.name)
                    self._usage["calls"] += len(chunk)
                    bar.update(len(chunk))
        finally:
            if cache is not None:
                cache.close()
        return self._table(dataset, answers)

    def _batches(self, paths: list[Path], missing: list[int], engine: Any, bar: Any = None):
        """(sample positions, answers) per batch of the missing images: here, or on the engine's cluster."""
        if engine is None:
            for start in range(0, len(missing), self.batch_size):
                chunk = missing[start : start + self.batch_size]
                yield chunk, self._call([paths[i] for i in chunk])
            return
        wanted = [paths[i] for i in missing]
        for positions, results in engine.batches(self, wanted, batch_size=self.batch_size, progress=bar):
            yield [missing[p] for p in positions], results

    def _key(self, path: Path) -> str:
        try:
            image = content_digest(path.read_bytes())
        except OSError as error:
            raise ModelError(f"model '{self.name}': cannot read image {path}: {error.strerror or error}") from None
        settings = {**{k: str(v) for k, v in self.settings.items()}, "image_mode": self.image_mode}
        settings["labels"] = list(self.label_names) if self.label_names is not None else None
        return cache_key(
            model=f"{self.kind}:{self.name}", inputs={"image": image}, settings=settings, version=self.version
        )

    def _call(self, paths: Sequence[Path]) -> list[Any]:
        """One batch through the model; each answer as JSON-ready data ({"label": ...} or {"scores": [...]})."""
        from PIL import Image

        images = []
        for path in paths:
            try:
                with Image.open(path) as image:
                    images.append(image.convert(self.image_mode))
            except OSError as error:
                raise ModelError(f"model '{self.name}': cannot read image {path}: {error}") from None
        try:
            output = self.predict_batch(images)
        except ModelError:
            raise
        except Exception as error:  # the user's code failed: say where, keep their message, no traceback
            text = " ".join(str(error).split())[:300]
            raise ModelError(
                f"model '{self.name}': predict_batch failed on a batch of {len(images)}: {type(error).__name__}: {text}"
            ) from error
        return self._answers(output, len(images))

    def _answers(self, output: Any, count: int) -> list[dict[str, Any]]:
        if self.labels is not None:
            scores = _as_scores(output)
            if scores is None or scores.shape != (count, len(self.labels)):
                shape = getattr(scores, "shape", type(output).__name__)
                raise ModelError(
                    f"model '{self.name}': predict_batch returned {shape} for {count} images; with labels given it "
                    f"must return one row of {len(self.labels)} scores per image"
                )
            if not np.isfinite(scores).all():
                raise ModelError(f"model '{self.name}': predict_batch returned scores that are NaN or infinite")
            return [{"scores": row.tolist()} for row in scores]
        if isinstance(output, str) or not isinstance(output, Sequence | np.ndarray) or len(output) != count:
            size = len(output) if isinstance(output, Sequence | np.ndarray) and not isinstance(output, str) else None
            raise ModelError(
                f"model '{self.name}': predict_batch must return one label per image ({count}); got "
                + (f"{size} item(s)" if size is not None else type(output).__name__)
                + " (for per-label scores, give the model its labels)"
            )
        return [{"label": str(label)} for label in output]

    def _table(self, dataset: Dataset, answers: list[dict[str, Any]]) -> pd.DataFrame:
        ids = dataset.samples["sample_id"].astype(str).to_numpy()
        if self.labels is None:
            outcomes = [self._outcome(a["label"]) for a in answers]
            return pd.DataFrame({"sample_id": ids, "outcome": outcomes, "raw": [a["label"] for a in answers]})
        scores = np.array([a["scores"] for a in answers], dtype=np.float64).reshape(len(answers), len(self.labels))
        best = scores.argmax(axis=1) if len(answers) else np.zeros(0, dtype=int)
        table = pd.DataFrame(
            {
                "sample_id": ids,
                "outcome": np.asarray(self.labels, dtype=object)[best].astype(str),
                "raw": [f"{self.label_names[b]}:{scores[i, b]:.4g}" for i, b in enumerate(best)],
            }
        )
        for column, label in enumerate(self.labels):
            table[f"{SCORE_PREFIX}{label}"] = scores[:, column]
        return table

    def _outcome(self, label: str) -> str:
        if label.strip().lower() in MODEL_NON_ANSWERS:
            return label.strip().lower()
        emotion = canonical(label)
        if emotion is None:
            raise ModelError(
                f"model '{self.name}': answered {label!r}, which names no emotion ({', '.join(EMOTIONS)}, or a word "
                f"such as happy or angry) and no non-answer ({', '.join(MODEL_NON_ANSWERS)})"
            )
        return emotion


def _lookup(cache: ResponseCache, keys: Sequence[str]) -> dict[int, Any]:
    """Stored answers by position; an entry of another shape (a foreign writer) is asked again."""
    stored = cache.get_many(keys)
    found = {}
    for index, key in enumerate(keys):
        entry = stored.get(key)
        payload = entry.payload if entry is not None else None
        if isinstance(payload, dict) and (
            isinstance(payload.get("label"), str) or isinstance(payload.get("scores"), list)
        ):
            found[index] = payload
    return found


def _as_scores(output: Any) -> np.ndarray | None:
    """A batch's scores as a float array (numpy, lists, or anything with ``.numpy()``), or None."""
    if hasattr(output, "detach"):  # a torch tensor, without importing torch
        output = output.detach().cpu().numpy()
    try:
        scores = np.asarray(output, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return scores if scores.ndim == 2 else None
