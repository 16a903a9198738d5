"""Data hygiene shared by the folder loaders (CFD, RADIATE, Face Place, RAF-DB).

A loader walks its folder, parses names and label files into sample rows, and reports what it could
not parse with ``Checker.flag``. ``Checker.finish`` then checks every row the same way (the path stays
inside the root, the image exists and decodes, ids are unique, the label is in the vocabulary, every
attribute has a value) and either stops with one message (what is wrong, which files, what to do) or,
where the user asked for ``?on_error=exclude``, lists each problem sample in ``Dataset.exclusions``.
Nothing is dropped anywhere else.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from fer_fairness.datasets._table import MISSING_VALUES, REQUIRED_COLUMNS, Dataset, validate_samples
from fer_fairness.errors import ConfigError, DatasetError
from fer_fairness.labels import EMOTIONS
from fer_fairness.specs import Spec

ON_ERROR = ("stop", "exclude")
COMMON_OPTIONS = ("name", "on_error")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
# macOS archive litter: resource forks ("._name.jpg") and their folder; metadata, never images.
_NOT_IMAGES = ("._",)
_NOT_FOLDERS = frozenset({"__MACOSX"})
_EXAMPLES = 3


@dataclass(frozen=True)
class _Kind:
    reason: str  # the exclusion's `reason`: one fixed phrase per kind, so reports can count by it
    what: str  # "<n> <what>" in the stop message
    todo: str  # what to do about it (a loader may say it more precisely)


# In the order a stop message reports them: the first kind found is the one explained.
KINDS: Mapping[str, _Kind] = {
    "escapes": _Kind(
        "path leaves the dataset folder",
        "path(s) leave the dataset folder",
        "copy the files into the folder (a symlink must point inside it)",
    ),
    "missing": _Kind("image file not found", "image file(s) not found", "restore them from the original download"),
    "unreadable": _Kind(
        "unreadable image", "image(s) cannot be decoded", "replace them with intact copies from the original download"
    ),
    "naming": _Kind(
        "file name does not follow the set's naming",
        "image file name(s) do not follow the set's naming",
        "rename them or move them out of the folder",
    ),
    "duplicate": _Kind(
        "duplicate sample id",
        "image(s) share a sample id",
        "keep one copy of each image (a folder holding two versions of the set, e.g. colour and greyscale, "
        "should be loaded one version at a time)",
    ),
    "label": _Kind(
        "label outside the vocabulary",
        "image(s) have a label outside the vocabulary",
        f"labels must map to one of {', '.join(EMOTIONS)}",
    ),
    "no_value": _Kind("attribute with no value", "image(s) lack an attribute value", "supply the missing values"),
}


@dataclass(frozen=True)
class _Issue:
    kind: str
    path: str
    detail: str
    known: Mapping[str, str | None]
    sample_id: str | None  # the id the sample would have had (None when its name says nothing)


def dataset_root(spec: Spec, *, usage: str) -> Path:
    """The folder a ``kind:ROOT`` spec names (never empty: the registry checks that), resolved
    (symlinks included) so containment checks hold."""
    root = Path(spec.target).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"{spec.kind}: dataset folder not found: {root}; pass the folder that holds the images, e.g. {usage}"
        )
    return root.resolve()


def excluding(spec: Spec) -> bool:
    """``?on_error=exclude`` (opt in to listing problem samples as exclusions) or ``stop`` (default)."""
    value = spec.option("on_error", "stop")
    if value not in ON_ERROR:
        raise ConfigError(f"dataset '{spec.text}': on_error must be one of {', '.join(ON_ERROR)}; got '{value}'")
    return value == "exclude"


def walk_images(root: Path) -> tuple[list[str], list[str]]:
    """(image files, folder links that leave the root): paths relative to ``root``, POSIX, sorted.

    Symlinked folders inside the root are followed, once each (a link back to a folder already walked
    is not walked again); a folder link that leaves the root is reported, not walked.
    """
    seen: set[str] = set()
    found, leaving = [], []
    for folder, folders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        kept = []
        for name in sorted(set(folders) - _NOT_FOLDERS):
            rel = Path(folder, name).relative_to(root).as_posix()
            if path_problem(root, rel, want_file=False) == "escapes":
                leaving.append(rel)
            else:
                kept.append(name)
        folders[:] = kept
        for name in files:
            if not name.startswith(_NOT_IMAGES) and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                found.append(Path(folder, name).relative_to(root).as_posix())
    return sorted(found), sorted(leaving)


def path_problem(root: Path, rel: str, *, want_file: bool = True) -> str | None:
    """'escapes' when ``rel`` resolves (symlinks included) outside ``root``, 'missing' when it is no file."""
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        return "escapes"
    if want_file and not target.is_file():
        return "missing"
    return None


def decode_problem(path: Path) -> str | None:
    """Why Pillow cannot read the image's header and structure, or None when it can."""
    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return str(exc) or type(exc).__name__
    return None


class Checker:
    """Collects the problems of one load; stops with one message, or turns them into exclusions."""

    def __init__(
        self,
        *,
        source: str,
        root: Path,
        attributes: Sequence[str],
        exclude: bool,
        todo: Mapping[str, str] | None = None,
    ) -> None:
        self.source = source
        self.root = root
        self.attributes = tuple(attributes)
        self.exclude = exclude
        self._todo = dict(todo or {})
        self._issues: list[_Issue] = []

    def flag(
        self, kind: str, path: str, detail: str = "", *, sample_id: str | None = None, **known: str | None
    ) -> None:
        """Record a problem the loader found itself (a name it cannot parse, a label it cannot map),
        with the sample id the image would have had where its name gives one."""
        if kind not in KINDS:
            raise ValueError(f"unknown problem kind {kind!r}")
        self._issues.append(_Issue(kind, path, detail, {a: known.get(a) for a in self.attributes}, sample_id))

    def image_files(self) -> list[str]:
        """Every image file under the root; folder links that leave the root are flagged, not walked."""
        files, leaving = walk_images(self.root)
        for rel in leaving:
            self.flag("escapes", rel, f"a folder link to {(self.root / rel).resolve()}")
        if not files:
            self._stop_unless_excluded()  # a linked-away folder explains the emptiness better
        return files

    def check(self, rows: Iterable[dict[str, str]]) -> list[dict[str, str]]:
        """Check every row; return those without a problem, after stopping if any problem is not excused."""
        rows = list(rows)
        paths_by_id: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            paths_by_id[row["sample_id"]].append(row["path"])
        clean = []
        for row in rows:
            problem = self._problem(row, paths_by_id[row["sample_id"]])
            if problem is None:
                clean.append(row)
            else:
                known = {a: row.get(a) for a in self.attributes}
                self.flag(problem[0], row["path"], problem[1], sample_id=row["sample_id"], **known)
        self._stop_unless_excluded()
        return clean

    def exclusions(self) -> pd.DataFrame:
        # The id lets a predictions file's answer for an excluded sample be set aside (as the manifest's).
        columns = ["path", "sample_id", "reason", "detail", *self.attributes]
        rows = [
            {"path": i.path, "sample_id": i.sample_id, "reason": KINDS[i.kind].reason, "detail": i.detail, **i.known}
            for i in sorted(self._issues, key=lambda i: i.path)
        ]
        frame = pd.DataFrame(rows, columns=columns)
        return frame.astype(object).where(frame.notna(), None)  # unknown is None, as the manifest's

    def _problem(self, row: Mapping[str, str], same_id: list[str]) -> tuple[str, str] | None:
        located = path_problem(self.root, row["path"])
        if located == "escapes":
            return located, f"resolves to {(self.root / row['path']).resolve()}"
        if located == "missing":
            return located, ""
        broken = decode_problem(self.root / row["path"])
        if broken is not None:
            return "unreadable", broken
        if len(same_id) > 1:
            others = ", ".join(p for p in same_id if p != row["path"]) or row["path"]
            return "duplicate", f"sample id {row['sample_id']} also given by {others}"
        if row["emotion"] not in EMOTIONS:
            return "label", f"label '{row['emotion']}'"
        blank = [a for a in self.attributes if str(row.get(a) or "").strip().lower() in MISSING_VALUES]
        if blank:
            return "no_value", f"no {', '.join(blank)}"
        return None

    def _stop_unless_excluded(self) -> None:
        if self.exclude or not self._issues:
            return
        counts = Counter(i.kind for i in self._issues)
        kind = next(k for k in KINDS if k in counts)
        issues = [i for i in self._issues if i.kind == kind]
        shown = ", ".join(f"{i.path} ({i.detail})" if i.detail else i.path for i in issues[:_EXAMPLES])
        more = f" and {len(issues) - _EXAMPLES} more" if len(issues) > _EXAMPLES else ""
        others = len(self._issues) - len(issues)
        also = f"; {others} other problem(s) follow once these are fixed" if others else ""
        raise DatasetError(
            f"{self.source}: {len(issues)} {KINDS[kind].what}: {shown}{more}; "
            f"{self._todo.get(kind, KINDS[kind].todo)}, or pass ?on_error=exclude to leave them out "
            f"and list them in the report{also}"
        )


def finish(
    rows: Iterable[dict[str, str]],
    *,
    checker: Checker,
    name: str,
    describe: Callable[[pd.DataFrame], str],
    notes: Sequence[str] = (),
) -> Dataset:
    """Check the rows and build the Dataset: the clean samples plus the exclusions the user opted into.

    ``describe`` turns the checked sample table into the Dataset's description.
    """
    clean = checker.check(rows)
    if not clean:
        raise DatasetError(
            f"{checker.source}: no images left to evaluate ({len(checker.exclusions())} excluded); "
            "check that ROOT is the dataset's folder"
        )
    table = pd.DataFrame(clean)
    ordered = [*REQUIRED_COLUMNS, *checker.attributes]
    table = table[ordered + [c for c in table.columns if c not in ordered]]
    samples, attributes, emotions = validate_samples(table, source=checker.source, attributes=checker.attributes)
    return Dataset(
        name=name,
        root=checker.root,
        samples=samples,
        attributes=attributes,
        emotions=emotions,
        description=describe(samples),
        exclusions=checker.exclusions(),
        notes=tuple(notes),
    )


def no_images(source: str, root: Path, naming: str) -> DatasetError:
    """The error for a folder with no image at all (usually the wrong folder)."""
    return DatasetError(
        f"{source}: no image files found under {root}; point ROOT at the folder holding the images ({naming})"
    )
