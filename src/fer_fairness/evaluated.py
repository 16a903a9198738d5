"""Samples not evaluated: no answer arrived (outcome ``error``), so they are counted, never scored.

A refusal or an unparseable answer is the model's behaviour; a transport failure says nothing about
the model. Above ``settings.max_not_evaluated`` the run stops rather than judge on what is left.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from fer_fairness.counts import GROUP_JOIN
from fer_fairness.errors import ModelError
from fer_fairness.labels import NOT_EVALUATED

if TYPE_CHECKING:
    from fer_fairness.criteria.evaluate import Table
    from fer_fairness.models._base import Model


def check_evaluated(outcomes: pd.DataFrame, *, model: Model, dataset: str, limit: float) -> None:
    """Raise ModelError when the share of not-evaluated samples in one model x dataset exceeds ``limit``."""
    missing = outcomes["outcome"] == NOT_EVALUATED
    n, total = int(missing.sum()), len(outcomes)
    if total == 0 or n / total <= limit:
        return
    example = _message(outcomes.loc[missing, "raw"].iloc[0]) if "raw" in outcomes.columns else None
    cause = "transport failures" + (f", e.g. {example}" if example else "")
    # Adapters with usage() call an API and cache every answer (never a failure); a file cannot be re-asked.
    if hasattr(model, "usage"):
        remedy = f"Answers received so far are cached: a re-run asks only for the {n} missing samples."
    else:
        remedy = f"Supply answers for the {n} samples marked '{NOT_EVALUATED}', or raise the limit."
    raise ModelError(
        f"model '{model.name}' left {n} of {total} samples of dataset '{dataset}' not evaluated ({cause}); "
        f"above settings.max_not_evaluated = {limit:g} the run stops. {remedy}"
    )


def count_not_evaluated(tables: Iterable[Table]) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
    """Not-evaluated samples per model, dataset, attribute and group (single attributes only)."""
    out: dict[str, dict[str, dict[str, dict[str, int]]]] = {}
    for table in tables:
        t = table.tensor
        if GROUP_JOIN in t.attribute or NOT_EVALUATED not in t.outcomes:
            continue
        column = t.outcomes.index(NOT_EVALUATED)
        per_group = t.counts[:, :, column].sum(axis=1).tolist()
        out.setdefault(table.model, {}).setdefault(table.dataset, {})[t.attribute] = dict(
            zip(t.groups, map(int, per_group), strict=True)
        )
    return out


def _message(raw: Any) -> str | None:
    """What the first failure said: the adapter's message, else the raw cell unless it only repeats 'error'."""
    text = str(raw).strip()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("message"):
        text = str(payload["message"])
    elif not text or text.lower() in (NOT_EVALUATED, "nan"):
        return None
    return " ".join(text.split())[:200]  # the stop message is one line
