import dataclasses
import json
import math

import numpy as np

from fer_fairness.criteria.records import Record
from fer_fairness.criteria.verdict import Verdict


def _oracle(record: Record) -> dict:
    # The JSON form by its definition: every field as dataclasses.asdict gives it, the verdict and
    # rule as text, NaN as null and infinities as "inf" / "-inf" (top-level numbers and rates).
    def number(value):
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, float) and math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(value) if isinstance(value, float) else value

    out = {k: number(v) for k, v in dataclasses.asdict(record).items()}
    out |= {"verdict": str(record.verdict), "rule": str(record.rule)}
    out["rates"] = {k: number(v) for k, v in record.rates.items()}
    return out


def test_a_records_json_form_is_its_fields_with_nan_and_infinities_spelled_out():
    record = Record(
        test_id="m|d|race=Black~White",
        criterion="accuracy_gap",
        model="m",
        dataset="d",
        attribute="race",
        group="Black",
        reference="White",
        detail=None,
        metric="accuracy difference",
        verdict=Verdict.INCONCLUSIVE,
        rule="overlap",
        mode="harm",
        inconclusive="skip",
        estimate=np.float64(-0.25),
        ci_low=-math.inf,
        ci_high=math.nan,
        confidence=0.95,
        p_value=None,
        p_adjusted=1.0,
        test_method="z",
        threshold="|difference| <= 0.05",
        band_low=-0.05,
        band_high=0.05,
        n={"Black": 3, "White": 4},
        rates={"Black": math.nan, "White": 0.5},
        count_ratio=math.inf,
    )
    found = record.to_dict()
    assert found == _oracle(record)
    assert list(found) == [f.name for f in dataclasses.fields(Record)]
    json.dumps(found, allow_nan=False)  # valid JSON: no NaN or infinity left
    found["n"]["Black"] = 99  # a copy: the record is unchanged
    assert record.n["Black"] == 3
