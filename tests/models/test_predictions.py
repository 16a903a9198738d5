"""A predictions file as a model: parsing labels and non-answers, and choosing rows per dataset."""

import csv
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fer_fairness.counts import join_outcomes
from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import ConfigError, FairnessError, ModelError
from fer_fairness.labels import EMOTIONS, NON_ANSWERS
from fer_fairness.models import MODELS
from fer_fairness.models._base import OUTCOME_COLUMNS, PredictContext
from fer_fairness.models.predictions import PredictionsModel


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def build(path: Path, query: str = "") -> PredictionsModel:
    spec = MODELS.parse(f"predictions:{path}" + (f"?{query}" if query else ""))
    return MODELS.factory(spec.kind)(spec)


def dataset(name: str, ids: list[str], root: Path) -> Dataset:
    samples = pd.DataFrame(
        {"sample_id": ids, "path": [f"{i}.png" for i in ids], "emotion": ["anger"] * len(ids), "subject_id": ids}
    )
    return Dataset(name=name, root=root, samples=samples, attributes=(), emotions=("anger",))


def predict(model: PredictionsModel, data: Dataset, tmp_path: Path) -> pd.DataFrame:
    return model.predict(data, context=PredictContext(seed=0, cache_dir=tmp_path / "cache", progress=False))


def model_error(path: Path, query: str = "") -> str:
    with pytest.raises(ModelError) as info:
        build(path, query)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_registry_resolves_predictions():
    assert MODELS.factory("predictions") is PredictionsModel


def test_csv_predictions(tmp_path):
    path = write_csv(
        tmp_path / "vendor.csv",
        ["sample_id", "prediction"],
        [["s1", "anger"], ["s2", " Disgust "], ["s3", "FEAR"], ["s4", "refused"]],
    )
    model = build(path)
    assert model.name == "vendor"
    out = predict(model, dataset("d", ["s1", "s2", "s3", "s4"], tmp_path), tmp_path)
    assert tuple(out.columns) == OUTCOME_COLUMNS
    assert out.values.tolist() == [
        ["s1", "anger", "anger"],
        ["s2", "disgust", " Disgust "],  # raw keeps the answer as given
        ["s3", "fear", "FEAR"],
        ["s4", "refused", "refused"],
    ]
    assert model.describe() == {"kind": "predictions", "path": str(path), "rows": "4"}


def test_every_label_and_non_answer_in_any_case(tmp_path):
    names = [*EMOTIONS, *NON_ANSWERS]
    spellings = [(n, v) for n in names for v in (n, n.upper(), n.title(), f"  {n.swapcase()}\t")]
    rows = [[f"s{i}", spelled] for i, (_, spelled) in enumerate(spellings)]
    out = build(write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], rows)).table
    assert out["outcome"].tolist() == [n for n, _ in spellings]
    assert out["raw"].tolist() == [spelled for _, spelled in spellings]


@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_prediction_is_unparseable_never_a_label(tmp_path, blank):
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], [["s1", blank], ["s2", "anger"]])
    out = predict(build(path), dataset("d", ["s1", "s2"], tmp_path), tmp_path)
    assert out["outcome"].tolist() == ["unparseable", "anger"]
    assert out["raw"].tolist() == [blank, "anger"]


def test_non_answers_are_kept(tmp_path):
    rows = [["s1", "refused"], ["s2", "Unparseable"], ["s3", "ERROR"]]
    model = build(write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], rows))
    out = predict(model, dataset("d", ["s1", "s2", "s3"], tmp_path), tmp_path)
    assert out["outcome"].tolist() == ["refused", "unparseable", "error"]


def test_parquet_predictions(tmp_path):
    path = tmp_path / "vendor.parquet"
    pq.write_table(
        pa.table(
            {"sample_id": ["s1", "s2", "s3"], "prediction": ["Happiness", None, "error"], "score": [0.9, 0.1, 0.0]}
        ),
        path,
    )
    model = build(path)
    out = predict(model, dataset("d", ["s1", "s2", "s3"], tmp_path), tmp_path)
    assert out["outcome"].tolist() == ["happiness", "unparseable", "error"]
    assert out["sample_id"].tolist() == ["s1", "s2", "s3"]


def test_parquet_integer_sample_ids_become_text(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"sample_id": [1, 2], "prediction": ["anger", "fear"]}), path)
    out = predict(build(path), dataset("d", ["1", "2"], tmp_path), tmp_path)
    assert out["sample_id"].tolist() == ["1", "2"]


def test_unknown_label_names_the_first_line(tmp_path):
    rows = [["s1", "anger"], ["s2", "Joy"], ["s3", "angry"], ["s4", "joy"]]
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], rows)
    assert model_error(path) == (
        f"predictions {path}: label(s) 'angry', 'joy' are neither emotions ({', '.join(EMOTIONS)}) "
        f"nor non-answers (refused, unparseable, error); first in data row 2"
    )


def test_at_most_five_unknown_labels_are_listed(tmp_path):
    rows = [[f"s{i}", f"x{i}"] for i in range(7)]
    message = model_error(write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], rows))
    assert "label(s) 'x0', 'x1', 'x2', 'x3', 'x4' are neither" in message
    assert "'x5'" not in message
    assert message.endswith("first in data row 1")


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        (["sample_id", "label"], "prediction"),
        (["id", "prediction"], "sample_id"),
        (["id", "label"], "sample_id, prediction"),
    ],
)
def test_missing_columns(tmp_path, header, missing):
    path = write_csv(tmp_path / "p.csv", header, [["s1", "anger"]])
    assert model_error(path) == (
        f"predictions {path}: missing column(s) {missing}; expected sample_id, prediction and optionally dataset"
    )


def test_dataset_column_selects_rows(tmp_path):
    rows = [["radiate", "s1", "anger"], ["cfd", "s1", "fear"], ["radiate", "s2", "refused"], ["cfd", "c9", "happiness"]]
    model = build(write_csv(tmp_path / "p.csv", ["dataset", "sample_id", "prediction"], rows))
    radiate = predict(model, dataset("radiate", ["s1", "s2"], tmp_path), tmp_path)
    assert radiate.values.tolist() == [["s1", "anger", "anger"], ["s2", "refused", "refused"]]
    assert list(radiate.index) == [0, 1]
    cfd = predict(model, dataset("cfd", ["s1", "c9"], tmp_path), tmp_path)
    assert cfd.values.tolist() == [["s1", "fear", "fear"], ["c9", "happiness", "happiness"]]
    # the selected rows join cleanly: the other dataset's ids are not "extra"
    joined = join_outcomes(dataset("radiate", ["s1", "s2"], tmp_path).samples, radiate, model="m", dataset="radiate")
    assert joined["outcome"].tolist() == ["anger", "refused"]


def test_dataset_with_no_rows_is_an_error(tmp_path):
    rows = [["radiate", "s1", "anger"], ["cfd", "s1", "fear"], ["radiate", "s2", "fear"]]
    path = write_csv(tmp_path / "p.csv", ["dataset", "sample_id", "prediction"], rows)
    model = build(path)
    with pytest.raises(ModelError) as info:
        predict(model, dataset("faceplace", ["s1"], tmp_path), tmp_path)
    assert (
        str(info.value)
        == f"predictions {path}: no rows for dataset 'faceplace' in its dataset column (has: cfd, radiate)"
    )


def test_without_a_dataset_column_every_row_is_offered(tmp_path):
    model = build(write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], [["s1", "anger"], ["x", "fear"]]))
    out = predict(model, dataset("anything", ["s1"], tmp_path), tmp_path)
    assert out["sample_id"].tolist() == ["s1", "x"]  # join_outcomes then reports "x" as extra
    with pytest.raises(ModelError, match="lacks"):
        join_outcomes(dataset("anything", ["s1"], tmp_path).samples, out, model=model.name, dataset="anything")


def test_name_option(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], [["s1", "anger"]])
    assert build(path, "name=vendor-x").name == "vendor-x"
    assert build(path).name == "p"


def test_unknown_option(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], [["s1", "anger"]])
    with pytest.raises(ConfigError) as info:
        build(path, "nme=x")
    assert str(info.value) == f"model 'predictions:{path}?nme=x': unknown option(s) nme (allowed: name)"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(FairnessError) as info:
        build(path)
    assert str(info.value) == f"predictions file not found: {path}"


def test_garbage_file(tmp_path):
    path = tmp_path / "p.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(FairnessError) as info:
        build(path)
    assert str(info.value).startswith(f"predictions file {path} could not be read: ")


def test_parquet_with_a_string_index_reports_the_unknown_label(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame({"sample_id": ["s1", "s2"], "prediction": ["anger", "joy"]}, index=["a", "b"]).to_parquet(path)
    assert "label(s) 'joy' are neither" in model_error(path)
