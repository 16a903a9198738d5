"""The study's subsets ("From Bias to Balance", arXiv 2408.14842) as named views of the real loaders.

``radiate-7:ROOT`` (calm dropped), ``faceplace-7:ROOT`` (multiracial dropped) and ``cfd-4:ROOT`` (the
main CFD set: neutral, anger, fear and happiness, happy open and closed merged) take the options of
their loader. Each checks its image count against the study's; a different count never stops the run,
it is issued as a ``DatasetWarning`` and kept in ``Dataset.notes`` with the likely reasons, since
results on a different set of images are not comparable with the study's numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

from fer_fairness.datasets import cfd, faceplace, radiate
from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import DatasetWarning
from fer_fairness.specs import Spec


@dataclass(frozen=True)
class StudyView:
    kind: str
    read: Callable[..., Dataset]
    keep: Callable[[dict[str, str]], bool]
    expected: int  # images in the study's subset
    selection: str  # what the view keeps, for the description and the count message
    options: str  # the loader options that change which images are kept


VIEWS = {
    view.kind: view
    for view in (
        StudyView(
            kind="radiate-7",
            read=radiate.read,
            keep=lambda row: row["emotion"] != "calm",
            expected=1488,
            selection="RADIATE without calm (seven emotions)",
            options="a ?codes= file that maps codes to or away from calm",
        ),
        StudyView(
            kind="faceplace-7",
            read=faceplace.read,
            keep=lambda row: row["race"] != "Multiracial",
            expected=1053,
            selection="Face Place without the multiracial folder",
            options="?pattern= or ?expressions=",
        ),
        StudyView(
            kind="cfd-4",
            read=cfd.read,
            keep=lambda row: row["source_set"] == "CFD",
            expected=1207,
            selection="the main CFD set (Asian, Black, Latino, White; neutral, anger, fear, happiness)",
            options="none",
        ),
    )
}


def load_view(spec: Spec, **_context) -> Dataset:
    """Registry entry for the study views: the loader's rows the view keeps, then the count check."""
    view = VIEWS[spec.kind]
    dataset = view.read(spec, default_name=view.kind, keep=view.keep)
    dataset = replace(dataset, description=f"{view.kind}, the study's subset: {view.selection}; {dataset.description}")
    note = count_note(view, dataset)
    if note is None:
        return dataset
    warnings.warn(DatasetWarning(note), stacklevel=2)
    return replace(dataset, notes=(*dataset.notes, note))


def count_note(view: StudyView, dataset: Dataset) -> str | None:
    """What to tell the user when the view does not hold the study's number of images."""
    found = len(dataset.samples)
    if found == view.expected:
        return None
    reasons = []
    if len(dataset.exclusions):
        reasons.append(f"{len(dataset.exclusions)} image(s) were excluded (?on_error=exclude)")
    reasons.append(
        "the folder may hold a partial copy, another release, or extra files"
        if found < view.expected
        else "the folder may hold another release, duplicated or extra files"
    )
    if view.options != "none":
        reasons.append(f"loader options change the selection ({view.options})")
    return (
        f"{view.kind} at {dataset.root}: {found} images where the study used {view.expected} "
        f"({'fewer' if found < view.expected else 'more'} by {abs(found - view.expected)}); "
        f"possible reasons: {'; '.join(reasons)}; results are not directly comparable with the study's"
    )
