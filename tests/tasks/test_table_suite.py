"""Your own tasks from a table (the ``table`` kind; ``jsonl`` is its JSONL spelling): CSV, JSONL,
Parquet and Hugging Face datasets read through one field mapping, a choice of judges (your own
function by import path), and bad tables reported by file, line or row, and field."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memento_lab.experiments.config import ExperimentConfig
from memento_lab.jsonl import FormatError
from memento_lab.tasks.registry import SuiteSpec, load_suite, spec_text
from memento_lab.tasks.tables import RowError
from memento_lab.trace import JudgeError

ROWS = [
    {"key": "q1", "prompt": "Capital of France?", "target": "Paris", "topic": "geo", "hint": "Europe"},
    {"key": "q2", "prompt": "2+2?", "target": "4", "topic": "math", "hint": ""},
    {"key": "q3", "prompt": "Capital of Peru?", "target": "Lima", "topic": "geo", "hint": "South America"},
]
MAPPING = "question=prompt&answer=target&id=key&family=topic"


def write_csv(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    import csv

    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header or list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_a_csv_with_a_field_mapping_gives_tasks_with_ids_families_and_the_other_columns(tmp_path):
    path = write_csv(tmp_path / "quiz.csv", ROWS)
    suite = load_suite(f"table:{path}?{MAPPING}")
    tasks = suite.tasks()
    assert [(t.id, t.question, t.answer, t.family) for t in tasks] == [
        ("q1", "Capital of France?", "Paris", "geo"),
        ("q2", "2+2?", "4", "math"),
        ("q3", "Capital of Peru?", "Lima", "geo"),
    ]
    assert tasks[0].metadata == {"file": str(path), "line": 2, "columns": {"hint": "Europe"}}
    assert all(t.suite == "table" and t.answer_kind == "short" for t in tasks)
    # without id and family columns: ids from the file's name and the line, the family is the file's name
    plain = load_suite(f"table:{path}?question=prompt&answer=target").tasks()
    assert [(t.id, t.family) for t in plain] == [("quiz:2", "quiz"), ("quiz:3", "quiz"), ("quiz:4", "quiz")]


def test_jsonl_parquet_and_csv_read_through_one_mapping_give_the_same_tasks(tmp_path):
    csv_tasks = load_suite(f"table:{write_csv(tmp_path / 'quiz.csv', ROWS)}?{MAPPING}").tasks()
    jsonl = tmp_path / "quiz.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    parquet = tmp_path / "quiz.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), parquet)
    for path in (jsonl, parquet):
        tasks = load_suite(f"table:{path}?{MAPPING}").tasks()
        assert [(t.id, t.question, t.answer, t.family) for t in tasks] == [
            (t.id, t.question, t.answer, t.family) for t in csv_tasks
        ]
    assert load_suite(f"table:{parquet}?{MAPPING}").tasks()[2].metadata["row"] == 2  # rows count from 0
    # jsonl: is the same reader with the JSONL defaults, and takes the same options
    assert [t.id for t in load_suite(f"jsonl:{jsonl}?{MAPPING}").tasks()] == ["q1", "q2", "q3"]


def test_a_list_answer_is_a_set_of_accepted_answers_and_dotted_columns_read_nested_values(tmp_path):
    rows = [{"q": "Largest planet?", "answers": {"text": ["Jupiter", "planet Jupiter"], "start": [0, 0]}}]
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    (task,) = load_suite(f"table:{path}?question=q&answer=answers.text").tasks()
    assert task.answer == "Jupiter" and task.metadata["aliases"] == ["Jupiter", "planet Jupiter"]


@pytest.mark.anyio
async def test_the_judge_is_chosen_by_option_or_variant_and_an_import_path_names_your_own(
    tmp_path, monkeypatch
):
    path = write_csv(tmp_path / "quiz.csv", ROWS)
    task = load_suite(f"table:{path}?{MAPPING}").tasks()[0]
    em = await load_suite(f"table:{path}?{MAPPING}").score(task, "Paris, France")
    f1 = await load_suite(f"table:{path}?{MAPPING}&judge=f1").score(task, "Paris, France")
    assert (em.decided_by, em.reward) == ("em", 0.0)
    assert f1.decided_by == "f1" and f1.reward == pytest.approx(2 / 3)
    assert (await load_suite(f"table+pm:{path}?{MAPPING}").score(task, "Paris, France")).reward == 1.0
    with pytest.raises(ValueError, match="judge given twice"):
        load_suite(f"table+pm:{path}?{MAPPING}&judge=f1")

    (tmp_path / "my_judges.py").write_text(
        textwrap.dedent(
            """
            def hint_aware(answer, task):
                return answer is not None and task.metadata["columns"]["hint"] in answer

            async def half(answer, task):
                return 0.5

            def too_much(answer, task):
                return 2.0

            def broken(answer, task):
                raise KeyError("no such column")
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    by_file = load_suite(f"table:{path}?{MAPPING}&judge=my_judges.py:hint_aware")
    judged = await by_file.score(task, "Paris (Europe)")
    assert judged.decided_by == "hint_aware" and judged.reward == 1.0
    assert [v.judge for v in judged.verdicts] == [
        "hint_aware",
        "em",
        "f1",
        "pm",
    ]  # the string judges beside it
    assert (await by_file.score(task, "Paris")).reward == 0.0
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module = load_suite(f"table:{path}?{MAPPING}&judge=my_judges:half")
    assert (await by_module.score(task, "x")).reward == 0.5  # an async function
    for name, message in [("too_much", r"returned 2\.0"), ("broken", "raised on task q1: KeyError")]:
        with pytest.raises(JudgeError, match=message):  # a judge failure is never a score
            await load_suite(f"table:{path}?{MAPPING}&judge=my_judges:{name}").score(task, "x")
    with pytest.raises(ValueError, match="my_judges has no function 'nope'"):
        load_suite(f"table:{path}?{MAPPING}&judge=my_judges:nope")
    with pytest.raises(ValueError, match="cannot import no_such_pkg"):
        load_suite(f"table:{path}?{MAPPING}&judge=no_such_pkg.judges:fn")
    with pytest.raises(ValueError, match="unknown judge 'bleu'"):
        load_suite(f"table:{path}?{MAPPING}&judge=bleu")


BAD_CSV = [
    # (rows, mapping, where, field, message)
    (ROWS, "question=prompt&answer=gold", None, "gold", "has no column 'gold' (the column of answer)"),
    (ROWS, "question=prompt", None, "answer", "has no column 'answer'"),
    ([*ROWS[:1], {**ROWS[1], "target": " "}], MAPPING, 3, "target", "is empty"),
    ([*ROWS[:2], {**ROWS[2], "key": "q1"}], MAPPING, 4, "key", "duplicate id 'q1' (first at line 2)"),
    ([{**ROWS[0], "prompt": ""}], MAPPING, 2, "prompt", "must be a non-empty string"),
    ([{**ROWS[0], "hint": "essay"}], MAPPING + "&answer_kind=hint", 2, "hint", "must be one of short"),
]


@pytest.mark.parametrize(("rows", "mapping", "where", "field", "message"), BAD_CSV)
def test_a_bad_csv_names_the_file_line_and_field(tmp_path, rows, mapping, where, field, message):
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(FormatError) as err:
        load_suite(f"table:{path}?{mapping}")
    assert message in str(err.value)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), where, field)


def test_a_bad_parquet_row_names_the_row_and_a_ragged_csv_its_line(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([ROWS[0], {**ROWS[1], "target": None}]), path)
    with pytest.raises(RowError) as err:
        load_suite(f"table:{path}?{MAPPING}")
    assert str(err.value) == f"{path}: row 1: field 'target': missing"
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("prompt,target\nq,a\nr,b,extra\n")
    with pytest.raises(FormatError, match="more values than the header's 2") as err2:
        load_suite(f"table:{ragged}?question=prompt&answer=target")
    assert err2.value.line == 3


def test_unknown_options_and_formats_are_refused_by_name(tmp_path):
    path = write_csv(tmp_path / "quiz.csv", ROWS)
    with pytest.raises(ValueError, match=r"unknown table option\(s\) \['questoin'\]; options: id, question"):
        load_suite(f"table:{path}?questoin=prompt")
    with pytest.raises(ValueError, match="unknown table format 'xlsx'"):
        load_suite(f"table:{path}?{MAPPING}&format=xlsx")
    with pytest.raises(FileNotFoundError, match="nope.csv does not exist"):
        load_suite(f"table:{tmp_path / 'nope.csv'}")
    with pytest.raises(FileNotFoundError, match="a Hugging Face dataset in the local cache: add format=hf"):
        load_suite(f"table:{tmp_path / 'nope'}")
    with pytest.raises(ValueError, match=r"unknown reasoning-gym option\(s\) \['x'\]; it takes no options"):
        load_suite("reasoning-gym:chain_sum?x=1")


def test_attachments_sample_and_kind_options(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.png").write_bytes(b"b")
    rows = [{**r, "attached": "a.txt; b.png" if i == 0 else ""} for i, r in enumerate(ROWS)]
    path = write_csv(tmp_path / "quiz.csv", rows)
    tasks = load_suite(f"table:{path}?{MAPPING}&files=attached&kind=text").tasks()
    assert tasks[0].files == [str(tmp_path / "a.txt"), str(tmp_path / "b.png")] and tasks[1].files == []
    assert {t.answer_kind for t in tasks} == {"text"}
    with pytest.raises(FormatError, match="attached file 'gone.txt' not found") as err:
        write_csv(path, [{**ROWS[0], "attached": "gone.txt"}])
        load_suite(f"table:{path}?{MAPPING}&files=attached")
    assert (err.value.line, err.value.field) == (2, "attached")
    many = write_csv(tmp_path / "many.csv", [{"q": f"q{i}", "a": "x", "f": "ab"[i % 2]} for i in range(10)])
    sampled = load_suite(f"table:{many}?question=q&answer=a&family=f&sample=2", seed=3).tasks()
    assert sorted(t.family for t in sampled) == ["a", "a", "b", "b"]
    assert [t.id for t in sampled] == [
        t.id for t in load_suite(f"table:{many}?question=q&answer=a&family=f&sample=2", seed=3).tasks()
    ]


def test_a_suite_table_in_toml_is_the_same_spec_string():
    table = {"path": "data/quiz.csv", "question": "prompt", "answer": "target", "judge": "my.judges:fn"}
    text = spec_text(table)
    assert text == "table:data/quiz.csv?answer=target&judge=my.judges:fn&question=prompt"
    assert SuiteSpec.parse(text).option == {"answer": "target", "judge": "my.judges:fn", "question": "prompt"}
    assert spec_text({"kind": "jsonl", "variant": "llm", "path": "t.jsonl"}) == "jsonl+llm:t.jsonl"
    assert spec_text({"path": "a b.csv", "question": "the question&more"}) == (
        "table:a b.csv?question=the+question%26more"
    )  # a column with '&' survives the round trip
    assert SuiteSpec.parse(spec_text({"path": "x.csv", "question": "the question&more"})).option == {
        "question": "the question&more"
    }
    assert ExperimentConfig(suite=table).suite == text  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="option 'a' is given twice"):
        SuiteSpec.parse("table:x.csv?a=1&a=2")


def test_a_saved_hugging_face_dataset_is_read_from_its_folder_and_hub_names_only_from_the_cache(
    tmp_path, monkeypatch
):
    datasets = pytest.importorskip(
        "datasets", reason="the optional extra memento-lab[datasets] (installed by make install) is absent"
    )
    data = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(ROWS[:2]),
            "test": datasets.Dataset.from_list(ROWS[2:]),
        }
    )
    folder = tmp_path / "quiz_ds"
    data.save_to_disk(str(folder))
    with pytest.raises(ValueError, match="choose a split with split=NAME: train, test"):
        load_suite(f"table:{folder}?{MAPPING}")
    tasks = load_suite(f"table:{folder}?{MAPPING}&split=test").tasks()
    assert [(t.id, t.answer, t.family) for t in tasks] == [("q3", "Lima", "geo")]
    assert tasks[0].metadata["file"] == f"{folder}[test]" and tasks[0].metadata["row"] == 0
    # a dataset name is looked up in the local cache only: an empty cache fails, nothing is fetched
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with pytest.raises(
        FileNotFoundError, match="not a folder and not a dataset in the local Hugging Face cache"
    ):
        load_suite(f"table:someone/never-cached?{MAPPING}&format=hf")


def test_a_hub_name_is_never_fetched_even_where_the_hub_is_online(tmp_path):
    pytest.importorskip("datasets", reason="the optional extra memento-lab[datasets] is absent")
    import os
    import subprocess
    import sys

    code = "from memento_lab.tasks import load_suite; load_suite('table:squad?format=hf&question=q&answer=a')"

    def stderr(**env: str) -> str:
        full = {**os.environ, "HF_HOME": str(tmp_path), **env}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full)
        assert out.returncode == 1
        return out.stderr

    assert "OfflineModeIsEnabled" in stderr(HF_HUB_OFFLINE="0")  # the datasets code path is offline itself
    refused = stderr(HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0")
    assert "read from the local Hugging Face cache only, never fetched" in refused
    assert not list(tmp_path.rglob("*.arrow"))  # nothing was downloaded into the cache
