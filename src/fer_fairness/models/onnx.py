"""``onnx:PATH``: a team's own classifier exported to ONNX, run through onnxruntime.

The graph is one image tensor in, one row of scores per image out. Everything a model needs that the
file may not say (label order, input size, colour, normalisation, layout, whether scores are logits)
is read from the graph where it can be and otherwise given in the spec; anything that cannot be told
is an error, never a guess. Batching, progress and caching are the shared BatchModel's; the cache is
keyed by the file's content and these settings, so a changed export or preprocessing asks again.

onnxruntime is imported when the adapter is built, so the package loads without the ``onnx`` extra.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.models._batch import BatchModel, canonical_labels, spec_for_workers
from fer_fairness.models._torch import content_digest
from fer_fairness.specs import Spec, check_options, choice_option, int_option

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
# ONNX input element types this adapter can feed.
DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
_SIZE = re.compile(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?")


class OnnxModel(BatchModel):
    """``onnx:PATH?labels=a,b,...&size=224&color=rgb|grey&mean=..&std=..&layout=nchw|nhwc
    &output=logits|probabilities&batch_size=N&provider=cpu|cuda&name=N``.

    Each image is converted to RGB or greyscale, resized (bilinear) to the input size, scaled to
    [0, 1], normalised as ``(x - mean) / std`` per channel and laid out as the input asks. Logits are
    turned into probabilities with a softmax; the ``score_<emotion>`` columns hold probabilities.
    """

    OPTIONS = (
        "labels",
        "labels_file",
        "size",
        "color",
        "mean",
        "std",
        "layout",
        "output",
        "batch_size",
        "provider",
        "name",
    )

    def __init__(self, spec: Spec) -> None:
        check_options(spec, self.OPTIONS, what="model")
        what = f"model '{spec.text}'"
        path = Path(spec.target).expanduser()
        if not path.is_file():
            raise ModelError(f"{what}: no ONNX file at {path}")
        batch_size = int_option(spec, "batch_size", 32)
        output = choice_option(spec, "output", ("logits", "probabilities"), "logits")
        requested = choice_option(spec, "provider", tuple(PROVIDERS))
        size = _size_option(spec)
        self.session = _session(path, requested, what=what)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(f"{i.name} {list(i.shape)}" for i in inputs)
            raise ModelError(f"{what}: the graph takes {len(inputs)} inputs ({names}); an image classifier takes one")
        self.input = inputs[0]
        if self.input.type not in DTYPES:
            raise ModelError(f"{what}: input '{self.input.name}' is {self.input.type}; supported: {', '.join(DTYPES)}")
        self.dtype = DTYPES[self.input.type]
        self.layout, color, (self.height, self.width) = _geometry(spec, list(self.input.shape), size, what=what)
        self.channels = 3 if color == "rgb" else 1
        self.mean = _floats(spec, "mean", 0.0, self.channels, positive=False)
        self.std = _floats(spec, "std", 1.0, self.channels, positive=True)
        self.output_kind = output
        self.output_name = self.session.get_outputs()[0].name
        label_names = _label_names(spec, self.session, what=what)
        canonical_labels(label_names, what=what)  # an unknown label names the spec, before BatchModel sees it
        width = self.session.get_outputs()[0].shape[-1] if self.session.get_outputs()[0].shape else None
        if _static(width) and width != len(label_names):
            raise ModelError(_width_message(what, width, label_names))
        self.path = path
        self._what = what
        batch = self.input.shape[0] if self.input.shape else None
        self.static_batch = batch if _static(batch) else None  # a graph exported for exactly N images
        super().__init__(
            spec.option("name") or path.stem,
            self._predict,
            labels=label_names,
            batch_size=batch_size,
            version=content_digest(path),
            image_mode="RGB" if color == "rgb" else "L",
            settings={
                "size": f"{self.height}x{self.width}",
                "resize": "bilinear",
                "color": color,
                "mean": ",".join(f"{v:g}" for v in self.mean),
                "std": ",".join(f"{v:g}" for v in self.std),
                "layout": self.layout,
                "output": output,
            },
            kind="onnx",
        )
        self.spec_text = spec_for_workers(spec, str(path.resolve()))

    def describe(self) -> dict[str, str]:
        # The provider is reported but kept out of the cache key: CPU and CUDA answers agree to rounding.
        return {**super().describe(), "path": str(self.path), "provider": self.session.get_providers()[0]}

    def preprocess(self, images: Sequence[Any]) -> np.ndarray:
        """Images (PIL, already in the model's colour mode) as the graph's input tensor."""
        from PIL import Image

        rows = []
        for image in images:
            if image.size != (self.width, self.height):
                image = image.resize((self.width, self.height), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32) / 255.0
            rows.append(pixels[:, :, None] if pixels.ndim == 2 else pixels)
        batch = (np.stack(rows) - self.mean.astype(np.float32)) / self.std.astype(np.float32)  # N, H, W, C
        if self.layout == "nchw":
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch, dtype=self.dtype)

    def _predict(self, images: list[Any]) -> np.ndarray:
        scores = self._run(self.preprocess(images)).astype(np.float64)
        if scores.ndim != 2 or scores.shape[0] != len(images):
            raise ModelError(
                f"{self._what}: output '{self.output_name}' has shape {list(scores.shape)} for {len(images)} "
                "images; expected one row of scores per image"
            )
        if scores.shape[1] != len(self.label_names):
            raise ModelError(_width_message(self._what, scores.shape[1], self.label_names))
        if self.output_kind == "probabilities":
            return scores
        scores -= scores.max(axis=1, keepdims=True)
        probabilities = np.exp(scores)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self.static_batch is None:
            return self.session.run([self.output_name], {self.input.name: batch})[0]
        # A fixed batch dimension: feed exactly that many, padding the last piece with copies of its
        # first image and dropping their answers.
        pieces = []
        for start in range(0, len(batch), self.static_batch):
            piece = batch[start : start + self.static_batch]
            padded = np.concatenate([piece, np.repeat(piece[:1], self.static_batch - len(piece), axis=0)])
            pieces.append(self.session.run([self.output_name], {self.input.name: padded})[0][: len(piece)])
        return np.concatenate(pieces)


def _session(path: Path, requested: str | None, *, what: str) -> Any:
    import onnxruntime  # without it, MODELS.build names the onnx extra

    available = onnxruntime.get_available_providers()
    if requested is not None and PROVIDERS[requested] not in available:
        raise ModelError(
            f"{what}: provider {requested} was asked for but onnxruntime offers only {', '.join(available)}"
        )
    wanted = requested or ("cuda" if PROVIDERS["cuda"] in available else "cpu")
    providers = [PROVIDERS[wanted]] + ([PROVIDERS["cpu"]] if wanted != "cpu" else [])
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: onnxruntime's warnings are not the user's to act on
    try:
        session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...)
        text = " ".join(str(error).split())[:300]
        raise ModelError(f"{what}: {path} is not an ONNX model onnxruntime can load ({text})") from None
    if requested == "cuda" and PROVIDERS["cuda"] not in session.get_providers():
        raise ModelError(f"{what}: provider cuda was asked for but onnxruntime could not start it (see its log)")
    return session


def _static(dim: Any) -> bool:
    return isinstance(dim, int) and not isinstance(dim, bool) and dim > 0


def _size_option(spec: Spec) -> tuple[int, int] | None:
    text = spec.option("size")
    if text is None:
        return None
    match = _SIZE.fullmatch(text)
    if match is None or int(match[1]) < 1 or (match[2] is not None and int(match[2]) < 1):
        raise ConfigError(f"model '{spec.text}': option size must be N or HxW (e.g. 224 or 224x192); got {text!r}")
    height = int(match[1])
    return height, int(match[2]) if match[2] is not None else height


def _geometry(
    spec: Spec, shape: list[Any], size: tuple[int, int] | None, *, what: str
) -> tuple[str, str, tuple[int, int]]:
    """(layout, colour, (height, width)) from the input shape and the spec, each checked against the other."""
    if len(shape) != 4:
        raise ModelError(
            f"{what}: input shape {shape} is not 4-D; an image classifier takes (batch, channels, height, width) "
            "or (batch, height, width, channels)"
        )
    layout = choice_option(spec, "layout", ("nchw", "nhwc"))
    if layout is None:
        first, last = shape[1] in (1, 3), shape[3] in (1, 3)
        if first == last:
            raise ModelError(
                f"{what}: cannot tell from input shape {shape} where the channels are; "
                "give ?layout=nchw or ?layout=nhwc"
            )
        layout = "nchw" if first else "nhwc"
    channels, spatial = (shape[1], shape[2:4]) if layout == "nchw" else (shape[3], shape[1:3])
    color = choice_option(spec, "color", ("rgb", "grey"))
    if _static(channels):
        if channels not in (1, 3):
            raise ModelError(
                f"{what}: input has {channels} channels ({layout} {shape}); supported: 1 (grey) or 3 (rgb)"
            )
        expected = "rgb" if channels == 3 else "grey"
        if color is not None and color != expected:
            raise ConfigError(f"{what}: ?color={color} but the input takes {channels} channel(s) ({layout} {shape})")
        color = expected
    elif color is None:
        raise ModelError(f"{what}: input shape {shape} leaves the channel count open; give ?color=rgb or ?color=grey")
    if size is None:
        if not all(_static(d) for d in spatial):
            raise ModelError(f"{what}: input shape {shape} has a dynamic height or width; give ?size=224 or ?size=HxW")
        return layout, color, (spatial[0], spatial[1])
    for axis, dim, given in zip(("height", "width"), spatial, size, strict=True):
        if _static(dim) and dim != given:
            raise ConfigError(f"{what}: ?size= gives {axis} {given} but the input takes {dim} ({layout} {shape})")
    return layout, color, size


def _floats(spec: Spec, key: str, default: float, channels: int, *, positive: bool) -> np.ndarray:
    """``?mean=`` / ``?std=``: one value, or one per channel."""
    text = spec.option(key)
    if text is None:
        return np.full(channels, default, dtype=np.float64)
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    allowed = "1" if channels == 1 else f"1 or {channels}"
    if (
        len(values) not in (1, channels)
        or not all(math.isfinite(v) for v in values)
        or (positive and not all(v > 0 for v in values))
    ):
        kind = "positive numbers" if positive else "numbers"
        raise ConfigError(
            f"model '{spec.text}': option {key} must be {allowed} comma-separated {kind} (e.g. {key}=0.5); got {text!r}"
        )
    return np.array(values * (channels if len(values) == 1 else 1), dtype=np.float64)


def _label_names(spec: Spec, session: Any, *, what: str) -> list[str]:
    """The output's label order: ?labels=, ?labels_file=, or the model's ``labels`` metadata."""
    listed = spec.names("labels", what="model")
    file = spec.option("labels_file")
    if listed is not None and file is not None:
        raise ConfigError(f"{what}: give the labels once, with ?labels= or ?labels_file=, not both")
    if listed is not None:
        return list(listed)
    if file is not None:
        path = Path(file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(
                f"{what}: cannot read labels file {path}: {getattr(error, 'strerror', None) or error}"
            ) from None
        return _parse_labels(text, source=f"labels file {path}", what=what, error=ConfigError)
    stored = session.get_modelmeta().custom_metadata_map.get("labels")
    if stored is None:
        raise ModelError(
            f"{what}: the model does not name its labels (no 'labels' metadata); give them in output order, "
            "e.g. ?labels=angry,happy,neutral or ?labels_file=labels.txt"
        )
    return _parse_labels(stored, source="the model's 'labels' metadata", what=what, error=ModelError)


def _parse_labels(text: str, *, source: str, what: str, error: type[Exception]) -> list[str]:
    """A JSON list of names, or one name per line (a comma list in metadata)."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            names = json.loads(stripped)
        except json.JSONDecodeError as problem:
            raise error(f"{what}: {source} is not a valid JSON list ({problem.msg})") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise error(f"{what}: {source} must be a JSON list of label names")
    else:
        separator = "\n" if "\n" in stripped else ","
        names = stripped.split(separator)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise error(f"{what}: {source} names no labels")
    return names


def _width_message(what: str, width: int, labels: Sequence[str]) -> str:
    return (
        f"{what}: the model outputs {width} scores per image but {len(labels)} labels were given "
        f"({', '.join(labels)}); give one label per output, in output order"
    )
