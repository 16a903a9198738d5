"""A predictions file as a model: parsing labels and non-answers, and choosing rows per dataset."""

import csv
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fer_fairness.counts import join_outcomes
from fer_fairness.datasets._table import Dataset
from fer_fairness.errors import ConfigError, FairnessError, ModelError
from fer_fairness.labels import EMOTIONS, NON_ANSWERS
from fer_fairness.models import MODELS
from fer_fairness.models._base import OUTCOME_COLUMNS, PredictContext
from fer_fairness.models.predictions import PredictionsModel
from tests.studies import write_study


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
    # "angry" and "joy" are usual names of emotions now; "angryish" and "joyish" are no one's
    rows = [["s1", "angry"], ["s2", "Joyish"], ["s3", "angryish"], ["s4", "joyish"], ["s5", "joy"]]
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], rows)
    assert model_error(path) == (
        f"predictions {path}: label(s) 'angryish', 'joyish' are neither emotions ({', '.join(EMOTIONS)}) "
        "nor non-answers (refused, unparseable, error); first in data row 2; "
        "read the file's own words with ?map=WORD=LABEL"
    )


def test_at_most_five_unknown_labels_are_listed(tmp_path):
    rows = [[f"s{i}", f"x{i}"] for i in range(7)]
    message = model_error(write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], rows))
    assert "label(s) 'x0', 'x1', 'x2', 'x3', 'x4' are neither" in message
    assert "'x5'" not in message
    assert message.endswith("first in data row 1; read the file's own words with ?map=WORD=LABEL")


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
        f"predictions {path}: missing column(s) {missing} (file has: {', '.join(header)}); expected sample_id, "
        "prediction (or score_<label> score columns) and optionally dataset; "
        "name other columns with ?sample_id=COL&prediction=COL"
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
    assert str(info.value) == (
        f"model 'predictions:{path}?nme=x': unknown option(s) nme "
        "(allowed: name, score_prefix, map, sample_id, prediction, dataset)"
    )


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
    pd.DataFrame({"sample_id": ["s1", "s2"], "prediction": ["anger", "joyish"]}, index=["a", "b"]).to_parquet(path)
    assert "label(s) 'joyish' are neither" in model_error(path)


# --- column mapping, as manifests do ---


def test_columns_are_mapped_like_a_manifest(tmp_path):
    rows = [["radiate", "s1", "Happy"], ["radiate", "s2", "refused"], ["cfd", "s1", "sad"]]
    path = write_csv(tmp_path / "p.csv", ["set", "image", "label"], rows)
    model = build(path, "sample_id=image&prediction=label&dataset=set")
    out = predict(model, dataset("radiate", ["s1", "s2"], tmp_path), tmp_path)
    assert out.values.tolist() == [["s1", "happiness", "Happy"], ["s2", "refused", "refused"]]


def test_a_mapped_column_the_file_lacks_names_the_option_and_the_columns(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["id", "label"], [["s1", "anger"]])
    assert model_error(path, "sample_id=id&prediction=answer") == (
        f"predictions {path}: ?prediction=answer names a column the file lacks (file has: id, label)"
    )


def test_one_column_mapped_twice_is_a_config_error(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["id", "label"], [["s1", "anger"]])
    with pytest.raises(ConfigError) as info:
        build(path, "sample_id=id&prediction=id")
    assert str(info.value) == (
        f"model 'predictions:{path}?sample_id=id&prediction=id': column(s) id mapped onto two of "
        "sample_id, prediction, dataset; each needs its own"
    )


def test_a_mapping_that_would_hide_a_column_of_that_name_is_an_error(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["sample_id", "label", "prediction"], [["s1", "anger", "fear"]])
    assert model_error(path, "prediction=label") == (
        f"predictions {path}: ?prediction=label would replace the column that already has that name; "
        "rename or drop one of the two"
    )


# --- label aliases ---


def test_usual_names_of_emotions_are_read_as_the_canonical_emotion(tmp_path):
    rows = [["s1", "Happy"], ["s2", "happy"], ["s3", "HAPPINESS"], ["s4", " angry "], ["s5", "Surprised"]]
    out = build(write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], rows)).table
    assert out["outcome"].tolist() == ["happiness", "happiness", "happiness", "anger", "surprise"]
    assert out["raw"].tolist() == ["Happy", "happy", "HAPPINESS", " angry ", "Surprised"]


def test_a_word_that_merely_contains_an_alias_is_unknown(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], [["s1", "happy face"]])
    assert "label(s) 'happy face' are neither" in model_error(path)


# independent oracle: the emotion each spelling was drawn from (a word of the alias list)
SPELLINGS = {
    "happiness": ("happy", "happiness", "joy"),
    "anger": ("angry", "anger"),
    "sadness": ("sad", "sadness"),
    "surprise": ("surprised", "surprise"),
    "fear": ("fearful", "fear", "scared"),
    "disgust": ("disgusted", "disgust"),
    "neutral": ("neutral",),
    "contempt": ("contempt", "contemptuous"),
    **{n: (n,) for n in NON_ANSWERS},
}


@st.composite
def spelled(draw):
    meaning = draw(st.sampled_from(sorted(SPELLINGS)))
    word = draw(st.sampled_from(SPELLINGS[meaning]))
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    word = "".join(c.upper() if up else c for c, up in zip(word, flips, strict=True))
    pad = st.text(alphabet=" \t", max_size=3)
    return meaning, draw(pad) + word + draw(pad)


@settings(max_examples=40, deadline=None)
@given(st.lists(spelled(), min_size=1, max_size=12), st.sampled_from(["csv", "parquet"]))
def test_any_case_and_padding_of_a_usual_name_reads_as_its_emotion(cells, fmt):
    with tempfile.TemporaryDirectory() as folder:
        ids = [f"s{i}" for i in range(len(cells))]
        path = write_any(Path(folder), fmt, {"sample_id": ids, "prediction": [w for _, w in cells]})
        out = build(path).table
    assert out["outcome"].tolist() == [meaning for meaning, _ in cells]
    assert out["raw"].tolist() == [w for _, w in cells]


def write_any(folder: Path, fmt: str, columns: dict[str, list]) -> Path:
    """A CSV (None written as an empty cell) or a Parquet file (None a null) of these columns."""
    if fmt == "parquet":
        path = folder / "p.parquet"
        pq.write_table(pa.table(columns), path)
        return path
    header = list(columns)
    cell = lambda v: "" if v is None else repr(v) if isinstance(v, float) else v  # noqa: E731
    rows = [[cell(v) for v in row] for row in zip(*columns.values(), strict=True)]
    return write_csv(folder / "p.csv", header, rows)


def test_map_reads_the_files_own_words(tmp_path):
    rows = [["s1", "Happyish"], ["s2", "no answer"], ["s3", "happy"], ["s4", "grumpy"]]
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], rows)
    out = build(path, "map=happyish=happiness, No%20Answer = refused,grumpy=angry").table
    assert out["outcome"].tolist() == ["happiness", "refused", "happiness", "anger"]
    assert out["raw"].tolist() == ["Happyish", "no answer", "happy", "grumpy"]


def test_map_may_hold_a_comma_or_equals_sign_escaped(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], [["s1", "sad, a bit"], ["s2", "=)"]])
    out = build(path, "map=sad%2C a bit=sadness,%3D)=happiness").table
    assert out["outcome"].tolist() == ["sadness", "happiness"]


def test_map_names_score_columns_too(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["sample_id", "score_cheery", "score_glum"], [["s1", "0.3", "0.7"]])
    out = build(path, "map=cheery=happiness,GLUM=sad").table
    assert out["outcome"].tolist() == ["sadness"]
    assert out[["score_happiness", "score_sadness"]].values.tolist() == [[0.3, 0.7]]


@pytest.mark.parametrize("entry", ["happyish", "=happiness", "happyish=", "happyish=smug", "x=happiness=y"])
def test_a_map_entry_that_cannot_be_read_is_a_config_error(tmp_path, entry):
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], [["s1", "happyish"]])
    with pytest.raises(ConfigError) as info:
        build(path, f"map=fear=fear,{entry}")
    assert str(info.value) == (
        f"model 'predictions:{path}?map=fear=fear,{entry}': cannot read '{entry}' in ?map=; write ?map=WORD=LABEL,... "
        f"with an emotion ({', '.join(EMOTIONS)}) or a non-answer (refused, unparseable, error) as LABEL, "
        "e.g. ?map=happyish=happiness"
    )


def test_a_map_word_read_two_ways_is_a_config_error(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], [["s1", "meh"]])
    with pytest.raises(ConfigError) as info:
        build(path, "map=meh=neutral,MEH=sad")
    assert (
        str(info.value)
        == f"model 'predictions:{path}?map=meh=neutral,MEH=sad': ?map= reads 'meh' as both neutral and sadness"
    )


def test_a_map_word_the_file_never_uses_is_an_error(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction"], [["s1", "meh"], ["s2", "Fear"]])
    assert model_error(path, "map=meh=neutral,mehh=neutral") == (
        f"predictions {path}: ?map= gives label(s) 'mehh' that the file never uses (labels: 'fear', 'meh')"
    )


# --- per-label score columns ---


def test_score_columns_are_kept_under_their_canonical_emotion(tmp_path):
    rows = [["s1", "happy", "0.7", "0.2", "0.1"], ["s2", "refused", "", "", ""], ["s3", "sad", "-1.5", "2e-3", "3"]]
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction", "score_Happy", "score_sad", " score_angry"], rows)
    # " score_angry" does not start with the prefix (headers are matched as written): not a score column
    out = predict(build(path), dataset("d", ["s1", "s2", "s3"], tmp_path), tmp_path)
    assert list(out.columns) == [*OUTCOME_COLUMNS, "score_happiness", "score_sadness"]  # labels.EMOTIONS order
    assert out["score_happiness"].dtype == float
    assert out["score_happiness"].tolist()[::2] == [0.7, -1.5]
    assert out["score_sadness"].tolist()[::2] == [0.2, 0.002]
    assert out.loc[1, ["score_happiness", "score_sadness"]].isna().all()  # the refusal has no scores
    assert out["outcome"].tolist() == ["happiness", "refused", "sadness"]  # the prediction column wins


def test_without_a_prediction_column_the_highest_score_is_the_prediction(tmp_path):
    rows = [["s1", "0.1", "0.7", "0.2"], ["s2", "0.5", "0.25", "0.25"], ["s3", "1e-9", "0", "2e-9"]]
    path = write_csv(tmp_path / "p.csv", ["sample_id", "score_anger", "score_fearful", "score_happy"], rows)
    out = predict(build(path), dataset("d", ["s1", "s2", "s3"], tmp_path), tmp_path)
    assert out["outcome"].tolist() == ["fear", "anger", "happiness"]
    assert out["raw"].tolist() == ["0.7", "0.5", "2e-9"]  # the winning score as written
    assert list(out.columns) == [*OUTCOME_COLUMNS, "score_anger", "score_fear", "score_happiness"]


def test_a_tie_for_the_highest_score_is_an_error(tmp_path):
    rows = [["s1", "0.1", "0.9"], ["s2", "0.50", "0.5"]]
    path = write_csv(tmp_path / "p.csv", ["sample_id", "score_anger", "score_fear"], rows)
    assert model_error(path) == (
        f"predictions {path}: data row 2 has its highest score in 2 columns (score_anger, score_fear), so there "
        "is no prediction; add a prediction column to say which label won"
    )


def test_a_score_prefix_of_ones_own(tmp_path):
    rows = [["s1", "0.2", "0.8", "x"]]
    path = write_csv(tmp_path / "p.csv", ["sample_id", "p_sad", "p_neutral", "score_notes"], rows)
    out = build(path, "score_prefix=p_").table
    assert out["outcome"].tolist() == ["neutral"]
    assert [c for c in out.columns if c.startswith("score_")] == ["score_neutral", "score_sadness"]


def test_a_score_prefix_that_matches_no_column_is_an_error(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction", "p_sad"], [["s1", "fear", "0.2"]])
    assert model_error(path, "score_prefix=P_") == (
        f"predictions {path}: ?score_prefix=P_ matches no column (file has: sample_id, prediction, p_sad)"
    )


def test_a_short_prefix_never_takes_a_core_column(tmp_path):
    rows = [["s1", "fear", "0.2"]]
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction", "psad"], rows)
    out = build(path, "score_prefix=p").table  # "prediction" starts with "p" but is the prediction
    assert out["score_sadness"].tolist() == [0.2] and out["outcome"].tolist() == ["fear"]


def test_two_score_columns_for_one_emotion_are_an_error(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["sample_id", "score_happy", "score_joy"], [["s1", "0.1", "0.2"]])
    assert model_error(path) == (
        f"predictions {path}: score columns 'score_happy', 'score_joy' all score happiness; keep one"
    )


def test_a_score_column_that_names_no_emotion_is_an_error(tmp_path):
    path = write_csv(
        tmp_path / "p.csv", ["sample_id", "prediction", "score_smug", "score_"], [["s1", "fear", "1", "2"]]
    )
    assert model_error(path) == (
        f"predictions {path}: score column(s) 'score_smug', 'score_' name no emotion after 'score_' "
        f"(emotions: {', '.join(EMOTIONS)}, or their usual names such as happy); rename them or choose another "
        "prefix with ?score_prefix="
    )


@pytest.mark.parametrize("cell", ["high", "inf", "-Infinity", "0,5", "1e400"])
def test_a_score_that_is_not_a_finite_number_names_column_and_row(tmp_path, cell):
    rows = [["s1", "fear", "0.5"], ["s2", "refused", cell], ["s3", "fear", cell]]
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction", "score_fear"], rows)
    assert model_error(path) == (
        f"predictions {path}: score column 'score_fear' holds {cell!r} in data row 2; "
        "every score must be a finite number"
    )


def test_a_blank_score_on_an_answered_row_is_an_error(tmp_path):
    rows = [["s1", "refused", "NA"], ["s2", "fear", "0.5"], ["s3", "anger", " n/a "]]
    path = write_csv(tmp_path / "p.csv", ["sample_id", "prediction", "score_fear"], rows)
    assert model_error(path) == (
        f"predictions {path}: score column 'score_fear' is blank in data row 3; only a row whose prediction is a "
        "non-answer (refused, unparseable, error) may leave its scores blank"
    )


def test_without_a_prediction_column_every_score_is_needed(tmp_path):
    path = write_csv(tmp_path / "p.csv", ["sample_id", "score_fear", "score_sad"], [["s1", "0.5", ""]])
    assert model_error(path) == (
        f"predictions {path}: score column 'score_sad' is blank in data row 1; with no prediction column every "
        "row needs every score (add one to mark non-answers)"
    )


MISSING_SPELLINGS = ("", " ", "NA", "nan", "null", "N/A")


@st.composite
def scored_rows(draw):
    """Rows of (prediction, {emotion: float or None}); None is a missing cell. Half the tables keep missing
    cells to non-answer rows (valid); in the other half any row may have one."""
    emotions = draw(st.lists(st.sampled_from(EMOTIONS), min_size=1, max_size=4, unique=True))
    stray = draw(st.booleans())
    finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
    rows = []
    for prediction in draw(st.lists(st.sampled_from([*EMOTIONS, *NON_ANSWERS]), min_size=1, max_size=8)):
        cell = st.one_of(st.none(), finite) if stray or prediction in NON_ANSWERS else finite
        rows.append((prediction, {e: draw(cell) for e in emotions}))
    return emotions, rows


@settings(max_examples=60, deadline=None)
@given(scored_rows(), st.sampled_from(["csv", "parquet"]), st.sampled_from(MISSING_SPELLINGS))
def test_score_tables_with_missing_cells(table, fmt, missing_as):
    emotions, rows = table
    columns = {"sample_id": [f"s{i}" for i in range(len(rows))], "prediction": [p for p, _ in rows]}
    for e in emotions:
        cells = [scores[e] for _, scores in rows]
        columns[f"score_{e}"] = cells if fmt == "parquet" else [missing_as if v is None else v for v in cells]
    # the oracle: the cells where an answered row has a missing score
    blank = [
        (i + 1, f"score_{e}")
        for i, (p, s) in enumerate(rows)
        for e in emotions
        if s[e] is None and p not in NON_ANSWERS
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = write_any(Path(folder), fmt, columns)
        if blank:
            with pytest.raises(ModelError) as info:
                build(path)
            # columns are checked one by one, so the reported column is the first (in file order) with a problem
            column = next(f"score_{e}" for e in emotions if any(c == f"score_{e}" for _, c in blank))
            row = min(r for r, c in blank if c == column)
            assert str(info.value).endswith(
                f"score column '{column}' is blank in data row {row}; only a row whose "
                "prediction is a non-answer (refused, unparseable, error) may leave "
                "its scores blank"
            )
            return
        out = build(path).table
    assert out["outcome"].tolist() == [p for p, _ in rows]
    for e in emotions:
        expected = [np.nan if s[e] is None else s[e] for _, s in rows]
        np.testing.assert_array_equal(out[f"score_{e}"].to_numpy(dtype=float), np.asarray(expected, dtype=float))


def test_a_bad_score_is_one_usage_line_in_a_run(pytester):
    manifest, predictions = write_study(pytester.path, [({"race": r}, "anger", "anger", 3) for r in ("a", "b")])
    frame = pd.read_csv(predictions, dtype=str, keep_default_na=False).assign(score_angry="0.9")
    frame.loc[1, "score_angry"] = "high"
    frame.to_csv(predictions, index=False)
    pytester.makepyfile(test_suite="def test_nothing():\n    pass\n")
    result = pytester.runpytest(
        f"--fairness-dataset=manifest:{manifest}",
        f"--fairness-model=predictions:{predictions}",
        "-p",
        "no:cacheprovider",
    )
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output[-2000:]
    assert "Traceback" not in output and "INTERNALERROR" not in output
    assert "score column 'score_angry' holds 'high' in data row 2; every score must be a finite number" in output
