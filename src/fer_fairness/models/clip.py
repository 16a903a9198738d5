"""CLIP through open_clip: zero-shot over a prompt-template ensemble, and the linear probe's embedder.

``clip-zeroshot:ARCH@PRETRAINED`` and ``clip-probe:ARCH@PRETRAINED`` share one image embedder and so
one embedding cache (``probe.cached_embeddings``, keyed by image bytes + weights + preprocessing): the
second model on the same images makes no forward pass, and a warm run reads no image. PRETRAINED is an
open_clip pretrained tag (weights from the hub or its cache) or a local checkpoint file or folder,
which loads without network. Zero-shot also caches its class (prompt-ensemble) embeddings, so a warm
run makes no model call.

torch and open_clip are imported when an adapter is built, never when this module is imported, so
the templates and label words below can be read (and reported) without the ``clip`` extra.
"""

from __future__ import annotations

import io
import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from fer_fairness._cache import atomic_path, stable_key
from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.labels import EMOTIONS
from fer_fairness.models._base import SCORE_PREFIX, PredictContext
from fer_fairness.models._torch import (
    choose_device,
    content_digest,
    explicit_path,
    hub_cache,
    hub_offline,
    load_rgb,
    versions,
)
from fer_fairness.models.probe import LinearProbe, cached_embeddings
from fer_fairness.models.prompts import CLIP_TEMPLATES as DEFAULT_TEMPLATES
from fer_fairness.models.prompts import LABEL_WORDS, LabelWords  # noqa: F401 (part of this module's API)
from fer_fairness.progress import bar as progress_bar
from fer_fairness.specs import Spec, check_options, int_option

# Bump when the embedding procedure changes: it is part of every embedding cache key.
EMBEDDING_VERSION = 1
# Bump when the class (prompt ensemble) embedding changes: it is part of their cache key.
CLASS_EMBEDDING_VERSION = 1


TEMPLATE_FIELDS: Final = ("label", "adjective")

# open_clip's usual file names inside a checkpoint folder, most specific first.
CHECKPOINT_NAMES: Final = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "model.safetensors",
    "pytorch_model.bin",
)
CHECKPOINT_SUFFIXES: Final = (".safetensors", ".bin", ".pt", ".pth")
FOLDER_CONFIG = "open_clip_config.json"


def render(template: str, emotion: str) -> str:
    """One prompt: ``template`` filled in with the words for ``emotion``."""
    words = LABEL_WORDS[emotion]
    return template.format(label=words.label, adjective=words.adjective)


def check_template(template: str, *, source: str) -> str:
    """A template must name {label} and/or {adjective} and nothing else."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise ConfigError(f"{source}: template {template!r} is not a valid format string ({error})") from error
    unknown = sorted({name for name in fields if name not in TEMPLATE_FIELDS})
    if unknown or not fields:
        given = ", ".join("{" + name + "}" for name in unknown) if unknown else "no field"
        raise ConfigError(
            f"{source}: template {template!r} must use {{label}} and/or {{adjective}} and nothing else; has {given}"
        )
    return template


def load_templates(path: Path) -> tuple[str, ...]:
    """Templates from a text file: one per line; blank lines and lines starting with # are skipped."""
    path = Path(path).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigError(f"clip templates file {path}: cannot read it ({error.strerror or error})") from error
    templates = tuple(
        check_template(line.strip(), source=f"clip templates file {path}")
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    )
    if not templates:
        raise ConfigError(f"clip templates file {path}: holds no template (one per line, # for comments)")
    return templates


def parse_target(spec: Spec) -> tuple[str, str]:
    """``ARCH@PRETRAINED`` -> (arch, pretrained)."""
    arch, at, pretrained = spec.target.partition("@")
    if not at or not arch or not pretrained:
        raise ConfigError(
            f"model '{spec.text}': write {spec.kind}:ARCH@PRETRAINED, e.g. {spec.kind}:ViT-B-32-quickgelu@openai "
            f"or {spec.kind}:ViT-B-32@/path/to/checkpoint.pt"
        )
    return arch, pretrained


@dataclass(frozen=True)
class Weights:
    """Where a model's weights come from. ``source`` is 'tag' (open_clip hub tag), 'file' or 'folder'."""

    arch: str
    pretrained: str  # the tag, or the resolved path
    source: str
    identity: str  # tag: where open_clip fetches it from; file/folder: sha256 of the content
    quick_gelu: bool = False  # what the tag's weights were trained with

    @property
    def label(self) -> str:
        """Short form for model names: the tag, or the file or folder name."""
        return self.pretrained if self.source == "tag" else Path(self.pretrained).name

    def checkpoint(self) -> str | None:
        """The checkpoint file inside a folder without an open_clip config, else None."""
        if self.source != "folder" or (Path(self.pretrained) / FOLDER_CONFIG).is_file():
            return None
        return str(_checkpoint_in(Path(self.pretrained)))


def resolve_weights(arch: str, pretrained: str) -> Weights:
    """Check ARCH and PRETRAINED before any loading; every problem is one line saying what and where.

    A known tag wins over a same-named file in the working directory, unless the path is explicit
    (absolute, ./, ../ or ~).
    """
    import open_clip

    config = {} if explicit_path(pretrained) else open_clip.get_pretrained_cfg(arch, pretrained)
    if config:
        _check_arch(arch, open_clip)
        source = config.get("hf_hub") or config.get("url") or config.get("file") or "unknown"
        return Weights(arch, pretrained, "tag", f"tag:{source}", quick_gelu=bool(config.get("quick_gelu", False)))
    path = Path(pretrained).expanduser().resolve()
    if path.is_dir():
        if not (path / FOLDER_CONFIG).is_file():
            _checkpoint_in(path)  # raises when there is none
        _check_arch(arch, open_clip, allow_unknown=(path / FOLDER_CONFIG).is_file())
        return Weights(arch, str(path), "folder", f"sha256:{content_digest(path)}")
    if path.is_file():
        _check_arch(arch, open_clip)
        return Weights(arch, str(path), "file", f"sha256:{content_digest(path)}")
    if explicit_path(pretrained):
        raise ModelError(
            f"clip: no checkpoint at {path} (PRETRAINED of {arch}@{pretrained}); expected a checkpoint file "
            f"({', '.join(CHECKPOINT_SUFFIXES)}) or a folder holding one"
        )
    _check_arch(arch, open_clip)
    tags = open_clip.list_pretrained_tags_by_model(arch)
    raise ModelError(
        f"clip: '{pretrained}' is neither an open_clip pretrained tag of {arch} "
        f"(tags: {', '.join(tags) or 'none'}) nor a checkpoint file or folder (nothing at {path})"
    )


def _check_arch(arch: str, open_clip, *, allow_unknown: bool = False) -> None:
    if allow_unknown or arch in open_clip.list_models():
        return
    import difflib

    close = difflib.get_close_matches(arch, open_clip.list_models(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else " (open_clip.list_models() lists them)"
    raise ConfigError(f"clip: unknown open_clip architecture '{arch}'{hint}")


def _checkpoint_in(folder: Path) -> Path:
    for name in CHECKPOINT_NAMES:
        if (folder / name).is_file():
            return folder / name
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES)
    if len(candidates) == 1:
        return candidates[0]
    found = f"found {len(candidates)}: {', '.join(p.name for p in candidates)}" if candidates else "found none"
    raise ModelError(
        f"clip: no single checkpoint in folder {folder}: looked for {FOLDER_CONFIG} with weights, "
        f"{', '.join(CHECKPOINT_NAMES)}, or exactly one *{'/*'.join(CHECKPOINT_SUFFIXES)} file; {found}"
    )


class ClipImageEmbedder:
    """open_clip image tower -> L2-normalised float32 embeddings; also encodes texts for zero-shot."""

    def __init__(self, *, arch: str, pretrained: str, device: str | None = None, batch_size: int = 32) -> None:
        import open_clip
        import torch

        self.weights = resolve_weights(arch, pretrained)
        self.name = f"clip:{arch}@{self.weights.label}"
        self.device = choose_device(device, what="clip")
        self.batch_size = batch_size
        # How a Ray actor rebuilds this embedder (engines.RayEngine): the weights by absolute path or
        # tag, the device left to the actor unless one was asked for.
        where = f"&device={device}" if device else ""
        self.spec_text = f"clip-probe:{arch}@{self.weights.pretrained}?batch_size={batch_size}{where}"
        self.model, self.preprocess, self.tokenizer = _load(self.weights, self.device)
        self._torch = torch
        self._versions = versions("torch", "torchvision", "open_clip_torch")
        self._preprocess_cfg = {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in open_clip.get_model_preprocess_cfg(self.model).items()
        }

    def settings(self) -> dict[str, str | int | float]:
        """Everything that decides the numbers: weights by content, preprocessing, library versions.

        The device is left out on purpose: CPU and CUDA embeddings agree to float32 rounding, and a
        cache filled on a GPU machine should serve a CPU one.
        """
        return {
            "embedding_version": EMBEDDING_VERSION,
            "arch": self.weights.arch,
            "pretrained": self.weights.pretrained if self.weights.source == "tag" else self.weights.source,
            "weights": self.weights.identity,
            "quick_gelu": int(self.weights.quick_gelu),
            "preprocess": _describe_transform(self.preprocess),
            "preprocess_cfg": json.dumps(self._preprocess_cfg, sort_keys=True),
            "normalisation": "l2",
            "dtype": "float32",
            "torch": self._versions["torch"],
            "open_clip": self._versions["open_clip_torch"],
        }

    def describe(self) -> dict[str, str]:
        return {
            "arch": self.weights.arch,
            "pretrained": self.weights.pretrained,
            "weights": self.weights.identity,
            "device": self.device,
            "preprocess": _describe_transform(self.preprocess),
            **self._versions,
        }

    def embed(self, paths: Sequence[Path], *, progress: bool, held: Mapping[int, bytes] | None = None) -> np.ndarray:
        """One L2-normalised float32 row per image, in the order given; batched on the chosen device.

        ``held`` maps positions in ``paths`` to the bytes already read (to hash them): those images
        are decoded from memory instead of being read again.
        """
        held = held or {}
        rows = []
        bar = progress_bar(len(paths), f"{self.name} images", progress)
        with bar, self._torch.inference_mode():
            for start in range(0, len(paths), self.batch_size):
                chunk = range(start, min(start + self.batch_size, len(paths)))
                pixels = self._torch.stack([self.preprocess(_decode(paths[i], held.get(i))) for i in chunk])
                features = self.model.encode_image(pixels.to(self.device), normalize=True)
                rows.append(features.float().cpu().numpy())
                bar.update(len(chunk))
        if not rows:
            return np.zeros((0, int(getattr(self.model.visual, "output_dim", 0))), dtype=np.float32)
        return np.concatenate(rows)

    def _call(self, paths: Sequence[Path]) -> list[list[float]]:
        """One batch on an engine's actor: the rows ``embed`` gives, as JSON-ready lists (float32 exactly)."""
        return self.embed(paths, progress=False).tolist()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised float32 row per text."""
        with self._torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.device)
            return self.model.encode_text(tokens, normalize=True).float().cpu().numpy()

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())


def _load(weights: Weights, device: str):
    """(model in eval mode, its eval preprocessing, its tokenizer), through open_clip's own loaders."""
    import open_clip

    if weights.source == "folder" and weights.checkpoint() is None:
        name, pretrained = f"local-dir:{weights.pretrained}", None  # self-describing: config + weights
    else:
        name, pretrained = weights.arch, weights.checkpoint() or weights.pretrained
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=device, force_quick_gelu=weights.quick_gelu
        )
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as error:  # open_clip raises RuntimeError, OSError, ValueError... for missing weights
        raise ModelError(_load_failure(weights, error)) from error
    return model.eval(), preprocess, tokenizer


def _load_failure(weights: Weights, error: Exception) -> str:
    reason = " ".join(str(error).split())[:300]
    if weights.source == "tag":
        offline = " with the hub offline (HF_HUB_OFFLINE is set)" if hub_offline() else ""
        return (
            f"clip: cannot load weights {weights.arch}@{weights.pretrained}: looked for "
            f"{weights.identity.removeprefix('tag:')} in {hub_cache()}{offline}; download them once or give a "
            f"local checkpoint path as PRETRAINED ({reason})"
        )
    return f"clip: cannot load {weights.arch} weights from {weights.pretrained}: {reason}"


def _decode(path: Path, data: bytes | None):
    """An image as RGB, from bytes already read when given (the same pixels as from the file)."""
    if data is None:
        return load_rgb(Path(path), what="clip")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except OSError as error:
        raise ModelError(f"clip: cannot read image {path}: {error}") from error


def _describe_transform(transform) -> str:
    """The transform's repr on one line, without memory addresses (which would change every run)."""
    return re.sub(r"\s+", " ", re.sub(r" at 0x[0-9a-fA-F]+", "", repr(transform))).strip()


def _embedder(spec: Spec) -> ClipImageEmbedder:
    arch, pretrained = parse_target(spec)
    return ClipImageEmbedder(
        arch=arch,
        pretrained=pretrained,
        device=spec.option("device"),
        batch_size=int_option(spec, "batch_size", 32),
    )


class ClipZeroShot:
    """``clip-zeroshot:ARCH@PRETRAINED?templates=FILE&batch_size=N&device=D&name=N``.

    Each class is the renormalised mean of its templates' normalised text embeddings; an image goes
    to the class of highest cosine similarity. ``raw`` is that class's softmax probability (CLIP's
    logit scale), and ``score_<label>`` columns hold every class's probability.
    """

    OPTIONS = ("templates", "batch_size", "device", "name")

    def __init__(self, spec: Spec) -> None:
        check_options(spec, self.OPTIONS, what="model")
        parse_target(spec)  # a malformed target is a usage error before any loading
        templates = spec.option("templates")
        self.templates = load_templates(Path(templates)) if templates else DEFAULT_TEMPLATES
        self.embedder = _embedder(spec)
        self.name = spec.option("name") or f"clip-zeroshot:{self.embedder.weights.arch}@{self.embedder.weights.label}"

    def prompts(self) -> dict[str, str]:
        return prompts(self.templates)

    def describe(self) -> dict[str, str]:
        return {"kind": "clip-zeroshot", **self.embedder.describe(), "templates": " | ".join(self.templates)}

    def class_embeddings(self, labels: Sequence[str]) -> np.ndarray:
        """One row per label: the renormalised mean of its templates' normalised text embeddings.

        Every prompt of every label is encoded in one batch (one model call for the default ensemble).
        """
        texts = [render(t, label) for label in labels for t in self.templates]
        encoded = self.embedder.encode_texts(texts).astype(np.float64)
        means = encoded.reshape(len(labels), len(self.templates), -1).mean(axis=1)
        return means / np.linalg.norm(means, axis=1, keepdims=True)

    def cached_class_embeddings(self, labels: Sequence[str], *, context: PredictContext) -> np.ndarray:
        """``class_embeddings`` through the cache: a warm run encodes no text.

        Keyed by what decides the numbers: the embedder's settings (weights by content, architecture,
        library versions), the labels and their rendered prompts. Stored as float64, so a warm run
        scores with exactly the rows a cold one did. Written atomically without a lock: concurrent
        writers write the same bytes.
        """
        prompts = [[render(t, label) for t in self.templates] for label in labels]
        key = stable_key(CLASS_EMBEDDING_VERSION, dict(self.embedder.settings()), list(labels), prompts)
        path = Path(context.cache_dir) / "clip-classes" / f"{key}.npy"
        if path.is_file():
            return np.load(path)
        rows = self.class_embeddings(labels)
        with atomic_path(path) as temporary:
            np.save(temporary, rows)
        return rows

    def image_embeddings(self, dataset: Dataset, *, context: PredictContext) -> np.ndarray:
        """The image embeddings in table order, from the cache clip-probe reads and fills too."""
        return cached_embeddings(self.embedder, dataset, context=context, what=self.name)[0]

    def predict(self, dataset: Dataset, *, context: PredictContext) -> pd.DataFrame:
        labels = [label for label in dataset.emotions if label in LABEL_WORDS]
        missing = sorted(set(dataset.emotions) - set(labels))
        if missing:  # every canonical emotion has words; this guards the two tables drifting apart
            raise ModelError(f"{self.name}: no prompt words for label(s) {', '.join(missing)}")
        images = self.image_embeddings(dataset, context=context).astype(np.float64)
        logits = self.embedder.logit_scale * images @ self.cached_class_embeddings(labels, context=context).T
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        best = probabilities.argmax(axis=1)
        columns = {
            "sample_id": dataset.samples["sample_id"].astype(str).to_numpy(),
            "outcome": np.asarray(labels, dtype=object)[best].astype(str),
            "raw": [f"{p:.4f}" for p in probabilities[np.arange(len(best)), best]],
        }
        # One frame built at once: inserting a column per label copied the table each time.
        columns.update({f"{SCORE_PREFIX}{label}": probabilities[:, i] for i, label in enumerate(labels)})
        return pd.DataFrame(columns)


class ClipProbe(LinearProbe):
    """The core's linear probe on CLIP image embeddings; describes the CLIP model it embeds with."""

    embedder: ClipImageEmbedder

    def batch_runner(self) -> ClipImageEmbedder:
        """What a Ray actor rebuilt from the embedder's spec runs: the embedder (the fit stays on the driver)."""
        return self.embedder

    def describe(self) -> dict[str, str]:
        return {**super().describe(), **self.embedder.describe(), "kind": "clip-probe"}


def clip_probe(spec: Spec) -> ClipProbe:
    """``clip-probe:ARCH@PRETRAINED?batch_size=N&device=D&name=N``: the linear probe on CLIP embeddings."""
    check_options(spec, ("batch_size", "device", "name"), what="model")
    parse_target(spec)
    embedder = _embedder(spec)
    name = spec.option("name") or f"clip-probe:{embedder.weights.arch}@{embedder.weights.label}"
    return ClipProbe(embedder, name=name)


def prompts(templates: Sequence[str] = DEFAULT_TEMPLATES) -> dict[str, str]:
    """The templates and the words they are filled with, for the report."""
    return {
        "templates": "\n".join(templates),
        "label words": "; ".join(f"{e}: {LABEL_WORDS[e].label} / {LABEL_WORDS[e].adjective}" for e in EMOTIONS),
    }
