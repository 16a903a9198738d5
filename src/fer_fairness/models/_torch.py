"""Shared helpers of the torch adapters (CLIP, PaliGemma): options, device, weights identity, images.

This module itself imports nothing heavy; torch is imported inside the functions that need it, so
the adapters stay importable (for their templates, prompts and parsers) without their extra.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import TypeVar

from PIL import Image

from fer_fairness.errors import ModelError

T = TypeVar("T")

_CHUNK = 8 * 1024 * 1024
# (resolved path, size, mtime_ns) -> sha256: a checkpoint is hashed once per process.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def choose_device(requested: str | None, *, what: str) -> str:
    """``requested`` (checked), else CUDA when present, else CPU."""
    import torch

    if requested is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"{what}: device '{requested}' was asked for but torch sees no CUDA device")
    try:
        torch.device(requested)
    except RuntimeError as error:
        raise ModelError(f"{what}: device '{requested}' is not a torch device ({error})") from error
    return requested


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_rgb(path: Path, *, what: str) -> Image.Image:
    """An image as RGB, fully read (so the file is closed); unreadable files are a ModelError."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as error:
        raise ModelError(f"{what}: cannot read image {path}: {error}") from error


def content_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, or of a folder's files (relative names and bytes, sorted).

    Weights are identified by content, not by path or mtime, so a cache directory carried to another
    machine (say a CI cache) stays valid when the same checkpoint is downloaded there again.
    """
    path = Path(path).resolve()
    if path.is_file():
        return _file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path)):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(b"\x1f")
        digest.update(_file_sha256(file).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


def _hidden(file: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in file.relative_to(root).parts)


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def explicit_path(text: str) -> bool:
    """True for what can only be meant as a filesystem path: absolute, ./, ../ or ~."""
    return text.startswith(("/", "./", "../", "~")) or text in (".", "..")


def looks_like_path(text: str) -> bool:
    """An explicit path, or a relative one that exists (as transformers decides for REPO_OR_PATH)."""
    return explicit_path(text) or Path(text).expanduser().exists()


def hub_offline() -> bool:
    """Whether the Hugging Face hub is switched off by the environment (HF_HUB_OFFLINE)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_cache() -> str:
    """Where huggingface_hub keeps downloads, for messages."""
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - every torch extra brings huggingface_hub
        return "the Hugging Face cache"


def check_model_folder(source: str, *, what: str, holds: str) -> None:
    """A local transformers folder must exist and hold config.json; else one line naming what it lacks."""
    folder = Path(source)
    if not folder.is_dir() or not (folder / "config.json").is_file():
        lacking = "no folder" if not folder.exists() else "no config.json in the folder"
        raise ModelError(f"{what}: {lacking} at {folder}; expected {holds}")


def weights_identity(source: str, revision: str | None, *, local: bool) -> str:
    """What names a transformers checkpoint in cache keys: ``sha256:...`` of a local folder's content,
    or ``hub:REPO@COMMIT`` of a cached hub snapshot (the commit, so a moved ``main`` is a different model)."""
    if local:
        return f"sha256:{content_digest(Path(source))}"
    from transformers.utils import cached_file

    resolved = cached_file(source, "config.json", revision=revision, local_files_only=True)
    folder = Path(resolved).parent if resolved else None
    commit = folder.name if folder is not None and folder.parent.name == "snapshots" else revision
    return f"hub:{source}@{commit or 'unknown'}"


def load_failure(what: str, source: str, error: Exception, *, local: bool) -> str:
    """One line for weights that would not load: the folder, or where the hub cache was searched."""
    reason = " ".join(str(error).split())[:300]
    if local:
        return f"{what}: cannot load the model folder {source}: {reason}"
    offline = " with the hub offline (HF_HUB_OFFLINE is set)" if hub_offline() else ""
    return (
        f"{what}: cannot load {source}: looked in {hub_cache()}{offline}; download it once or give a "
        f"local model folder ({reason})"
    )


def versions(*distributions: str) -> dict[str, str]:
    """Installed versions of the named distributions (``absent`` where not installed)."""
    found = {}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found
