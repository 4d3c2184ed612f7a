"""Suites: real reasoning-gym tasks and scorers, HumanEval through the real sandbox, the
DeepResearcher loader, user JSONL files (errors name file and line) and trivial baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeChat, always_correct, reply

from memento_lab.jsonl import FormatError
from memento_lab.tasks import spec_forms
from memento_lab.tasks.judges import unit_test_judge
from memento_lab.tasks.suites import (
    JudgeContext,
    Task,
    extract_code,
    humaneval_program,
    load_suite,
    trivial_baseline,
)
from memento_lab.trace import JudgeError


def _gold(task: Task) -> str:
    assert task.answer is not None
    return task.answer


# --------------------------------------------------------------------------- reasoning-gym
def test_reasoning_gym_tasks_are_deterministic_by_seed():
    a = load_suite("reasoning-gym:spell_backward,chain_sum", n=4, seed=0).tasks()
    b = load_suite("reasoning-gym:spell_backward,chain_sum", n=4, seed=0).tasks()
    c = load_suite("reasoning-gym:spell_backward,chain_sum", n=4, seed=1).tasks()
    assert [t.model_dump() for t in a] == [t.model_dump() for t in b]
    assert [t.question for t in a] != [t.question for t in c]
    assert len(a) == 8 and [t.family for t in a] == ["spell_backward"] * 4 + ["chain_sum"] * 4
    assert a[3].id == "rg:spell_backward:s0:3" and a[0].suite == "reasoning-gym"
    assert all(t.answer for t in a)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "family", ["spell_backward", "chain_sum", "letter_counting", "family_relationships", "gsm_symbolic"]
)
async def test_reasoning_gym_scores_gold_one_and_wrong_less(family: str):
    suite = load_suite(f"reasoning-gym:{family}", n=3, seed=0)
    for task in suite.tasks():
        gold = (await suite.score(task, task.answer)).verdicts
        assert gold[0].judge == "reasoning_gym" and gold[0].score == 1.0 and gold[0].correct
        assert [v.judge for v in gold[1:]] == ["em", "f1"]
        wrong = (await suite.score(task, _gold(task) + "x9")).verdicts
        assert wrong[0].score < 1.0 and not wrong[0].correct
        none = (await suite.score(task, None)).verdicts
        assert none[0].score == 0.0


@pytest.mark.anyio
async def test_reasoning_gym_partial_credit_and_llm_secondary():
    suite = load_suite("reasoning-gym:spell_backward", n=1, seed=0)
    task = suite.tasks()[0]
    near = _gold(task)[:-1] + ("a" if _gold(task)[-1] != "a" else "b")  # last letter wrong
    v = (await suite.score(task, near)).verdicts
    assert 0.0 < v[0].score < 1.0  # the dataset's own partial credit, not exact match
    assert v[1].judge == "em" and v[1].score == 0.0
    judge = always_correct()
    with_llm = (await suite.score(task, near, ctx=JudgeContext(judge=judge, llm_judge=True))).verdicts
    assert [x.judge for x in with_llm] == ["reasoning_gym", "em", "f1", "llm"] and judge.calls == 1
    without = (await suite.score(task, near, ctx=JudgeContext(judge=judge))).verdicts  # llm_judge off
    assert [x.judge for x in without] == ["reasoning_gym", "em", "f1"] and judge.calls == 1


@pytest.mark.anyio
async def test_reasoning_gym_scorer_bugs_are_guarded():
    # spell_backward: gold + junk scores 1.0000000000000002 in reasoning_gym 0.1.25 (float sum),
    # which would count a wrong answer as correct; its intended score is 0.8.
    spell = load_suite("reasoning-gym:spell_backward", n=1, seed=0)
    task = spell.tasks()[0]
    v = (await spell.score(task, _gold(task) + "x9")).verdicts[0]
    assert v.score == 0.8 and not v.correct and "corrected" in v.detail
    assert (await spell.score(task, _gold(task).upper())).verdicts[0].score == 1.0  # its scorer ignores case
    # prime_factorization's scorer raises ValueError on a malformed answer: a 0, not a crash
    pf = load_suite("reasoning-gym:prime_factorization", n=1, seed=0)
    task = pf.tasks()[0]
    v = (await pf.score(task, _gold(task) + "x9")).verdicts[0]
    assert v.score == 0.0 and "raised ValueError" in v.detail


def test_reasoning_gym_bad_family_names_the_closest():
    with pytest.raises(ValueError, match="spell_backward"):
        load_suite("reasoning-gym:spel_backward")
    with pytest.raises(ValueError, match="at least one family"):
        load_suite("reasoning-gym:")


# --------------------------------------------------------------------------- HumanEval
def test_humaneval_tasks_and_slices():
    s = load_suite("humaneval:0-3")
    tasks = s.tasks()
    assert [t.id for t in tasks] == ["humaneval:0", "humaneval:1", "humaneval:2"]
    assert tasks[0].metadata["entry_point"] == "has_close_elements"
    assert "def has_close_elements" in tasks[0].question and "def check" in tasks[0].metadata["test"]
    assert len(load_suite("humaneval", n=5, seed=0).tasks()) == 5
    assert len(load_suite("humaneval", n=0).tasks()) == 164
    with pytest.raises(ValueError, match="outside"):
        load_suite("humaneval:100-200")
    with pytest.raises(ValueError, match="humaneval:0-20"):
        load_suite("humaneval:first")


@pytest.mark.anyio
async def test_extract_code_and_program_assembly():
    prompt = 'def f(x):\n    """Double x."""\n'
    fenced = (
        "Here:\n```python\nimport os\n\ndef f(x):\n    return 2 * x\n```\nand a test\n```\nprint(f(2))\n```"
    )
    assert extract_code(fenced, "f").startswith("import os")
    assert (
        extract_code("```python\ndef f(x):\n    return x", "f") == "def f(x):\n    return x"
    )  # unclosed fence
    assert extract_code("def f(x): return x", "f") == "def f(x): return x"  # no fence: the raw text
    tests = "def check(candidate):\n    assert candidate(3) == 6\n"
    for answer in [fenced, "return 2 * x", "    return 2 * x\n"]:  # full function, bare body, indented body
        v = await unit_test_judge(humaneval_program(prompt, answer, "f"), tests, "f")
        assert v.correct, (answer, v.detail)


@pytest.mark.anyio
async def test_humaneval_canonical_passes_and_broken_fails_in_sandbox(tmp_path: Path):
    suite = load_suite("humaneval:0-2")
    ctx = JudgeContext(workspace=tmp_path)
    for task in suite.tasks():
        canonical = (await suite.score(task, f"```python\n{task.answer}```", ctx=ctx)).verdicts[0]
        assert canonical.judge == "unit_tests" and canonical.correct, canonical.detail
    task = suite.tasks()[0]
    broken = (await suite.score(task, "    return False\n", ctx=ctx)).verdicts[0]
    assert broken.score == 0.0 and "AssertionError" in broken.detail
    empty = (await suite.score(task, None, ctx=ctx)).verdicts[0]
    assert empty.score == 0.0 and empty.detail == "no answer"


@pytest.mark.anyio
@pytest.mark.slow
async def test_all_164_canonical_solutions_pass_as_fenced_answers():
    """Program assembly works for every problem (helpers and imports in the prompt included)."""
    import anyio

    suite = load_suite("humaneval", n=0)
    tasks = suite.tasks()
    failed: list[str] = []
    limit = anyio.Semaphore(4)

    async def one(task: Task) -> None:
        async with limit:
            v = (await suite.score(task, f"Here you go:\n```python\n{task.answer}```\n")).verdicts[0]
        if not (v.correct and v.detail.startswith("check() returned after")):  # the tests reported it
            failed.append(f"{task.id}: {v.detail}")

    async with anyio.create_task_group() as tg:
        for task in tasks:
            tg.start_soon(one, task)
    assert len(tasks) == 164 and failed == []


# --------------------------------------------------------------------------- DeepResearcher
@pytest.mark.anyio
async def test_deepresearcher_loader_and_judges(seed_dir: Path):
    suite = load_suite("deepresearcher", n=2, seed=0)
    tasks = suite.tasks()
    families = {t.family for t in tasks}
    assert {"nq", "hotpotqa", "Bamboogle"} <= families
    assert all(sum(t.family == f for t in tasks) == 2 for f in families)
    assert [t.id for t in tasks] == [t.id for t in load_suite("deepresearcher", n=2, seed=0).tasks()]
    multi = next(t for t in tasks if len(t.metadata["aliases"]) > 1)
    alias = multi.metadata["aliases"][-1]
    v = (await suite.score(multi, alias)).verdicts  # any alias is a right answer
    assert [x.judge for x in v] == ["f1", "em", "pm"] and v[0].score == 1.0 and v[1].correct
    judge = always_correct()
    v = (await suite.score(multi, "something else", ctx=JudgeContext(judge=judge))).verdicts
    assert v[0].judge == "llm" and v[0].score == 1.0 and judge.calls == 1  # the judge is the reward


@pytest.mark.anyio
async def test_deepresearcher_exact_alias_decides_without_the_judge_and_the_rest_goes_to_it(tmp_path: Path):
    path = tmp_path / "dr.jsonl"
    row = {
        "question": "In what country is Moore Park, Toronto?",
        "ground_truth": "Canada<|answer_split|>Dominion of Canada<|answer_split|>CAN",
        "data_source": "popqa",
    }
    path.write_text(json.dumps(row) + "\n")
    suite = load_suite(f"deepresearcher:{path}", n=0)
    (task,) = suite.tasks()
    judge = FakeChat([reply(parsed={"verdict": "incorrect", "reason": "Mexico is another country"})])
    ctx = JudgeContext(judge=judge)
    right = await suite.score(task, "Canada", ctx=ctx)
    assert (right.reward, right.decided_by, right.calls, judge.calls) == (1.0, "em", [], 0)
    wrong = await suite.score(task, "Mexico", ctx=ctx)
    assert (wrong.reward, wrong.decided_by, judge.calls, len(wrong.calls)) == (0.0, "llm", 1, 1)
    broken = FakeChat(always=reply(content='{"verdict": "cor', error="judge: reply is not a JSON object"))
    with pytest.raises(JudgeError):  # never a score of 0
        await suite.score(task, "Toronto", ctx=JudgeContext(judge=broken))


def test_deepresearcher_custom_path(tmp_path: Path):
    path = tmp_path / "dr.jsonl"
    rows = [
        {"question": f"q{i}", "ground_truth": f"a{i}<|answer_split|>b{i}", "data_source": "nq"}
        for i in range(5)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = load_suite(f"deepresearcher:{path}", n=0).tasks()
    assert [t.answer for t in tasks] == [f"a{i}" for i in range(5)]
    assert tasks[0].metadata["aliases"] == ["a0", "b0"]
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_suite(f"deepresearcher:{tmp_path / 'missing.jsonl'}")


# --------------------------------------------------------------------------- JSONL files
def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.anyio
async def test_jsonl_suite_exact_match_primary(tmp_path: Path):
    path = _write(
        tmp_path / "mine.jsonl",
        [
            '{"id": "a", "question": "2+2?", "answer": 4, "family": "math"}',
            '{"question": "Capital of France?", "answer": "Paris"}',
        ],
    )
    suite = load_suite(f"jsonl:{path}")
    t1, t2 = suite.tasks()
    assert (t1.id, t1.answer, t1.family) == ("a", "4", "math")
    assert (t2.id, t2.family) == ("mine:2", "mine")
    v = (await suite.score(t2, "the paris")).verdicts
    assert [x.judge for x in v] == ["em", "f1", "pm"] and v[0].score == 1.0
    v = (await suite.score(t2, "Paris, France")).verdicts
    assert v[0].score == 0.0 and v[2].score == 1.0
    f1_suite = load_suite(f"jsonl+f1:{path}")
    assert (await f1_suite.score(t2, "Paris, France")).verdicts[0].judge == "f1"
    llm_suite = load_suite(f"jsonl+llm:{path}")
    with pytest.raises(ValueError, match="JudgeContext"):
        await llm_suite.score(t2, "Paris")
    judge = always_correct()
    exact = await llm_suite.score(t2, "Paris", ctx=JudgeContext(judge=judge))
    assert (
        exact.decided_by == "em" and exact.verdicts[0].correct and judge.calls == 0
    )  # settled without a call
    judged = await llm_suite.score(t2, "It is Paris", ctx=JudgeContext(judge=judge))
    assert judged.decided_by == "llm" and judged.verdicts[0].correct and judge.calls == 1


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (['{"question": "q", "answer": "a"}', "{not json"], 2, "not valid JSON"),
        (['{"question": "q", "answer": "a"}', '{"question": "q2"}'], 2, "field 'answer'"),
        (['{"answer": "a"}'], 1, "field 'question'"),
        (['{"question": "q", "answer": {"a": 1}}'], 1, "string or number"),
        (['{"question": "q", "answer": "  "}'], 1, "is empty"),
        (
            ['{"id": 1, "question": "q", "answer": "a"}', '{"id": 1, "question": "r", "answer": "b"}'],
            2,
            "duplicate id",
        ),
    ],
)
def test_jsonl_bad_line_names_file_and_line(tmp_path: Path, lines: list[str], line: int, message: str):
    path = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(FormatError, match=message) as err:
        load_suite(f"jsonl:{path}")
    assert err.value.line == line and err.value.path == str(path)
    assert f"bad.jsonl:{line}" in str(err.value)


def test_jsonl_tasks_attach_files_relative_to_the_task_file(tmp_path: Path):
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "chart.png").write_bytes(b"png")
    (tmp_path / "notes.txt").write_text("n")
    path = _write(
        tmp_path / "gaia.jsonl",
        [
            '{"question": "q1", "answer": "a", "file": "media/chart.png"}',
            '{"question": "q2", "answer": "b", "files": ["notes.txt", "media/chart.png"]}',
            '{"question": "q3", "answer": "c"}',
        ],
    )
    t1, t2, t3 = load_suite(f"jsonl:{path}").tasks()
    chart, notes = str((tmp_path / "media" / "chart.png").resolve()), str((tmp_path / "notes.txt").resolve())
    assert (t1.files, t2.files, t3.files) == ([chart], [notes, chart], [])


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ('"file": "missing.png"', "file", "not found"),
        ('"file": ["a.png"]', "file", "non-empty string"),
        ('"files": "a.png"', "files", "list of non-empty strings"),
    ],
)
def test_jsonl_bad_attached_files_name_the_field(tmp_path: Path, extra: str, field: str, message: str):
    path = _write(tmp_path / "bad.jsonl", ['{"question": "q", "answer": "a", ' + extra + "}"])
    with pytest.raises(FormatError, match=message) as err:
        load_suite(f"jsonl:{path}")
    assert (err.value.line, err.value.field) == (1, field)


def test_unknown_specs_list_valid_forms(tmp_path: Path):
    for spec in ["gsm8k", "jsonl:"]:
        with pytest.raises(ValueError) as err:
            load_suite(spec)
        assert "reasoning-gym:FAM1,FAM2" in str(err.value) or "jsonl:tasks.jsonl" in str(err.value)
    assert any(form.startswith("bfcl:") for form in spec_forms())  # bfcl:SUBSET is a valid form now
    with pytest.raises(ValueError, match="unknown jsonl variant 'bleu'; choose one of em, f1, pm, llm"):
        load_suite("jsonl+bleu:" + str(_write(tmp_path / "x.jsonl", ['{"question": "q", "answer": "a"}'])))
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_suite(f"jsonl:{tmp_path / 'nope.jsonl'}")


# --------------------------------------------------------------------------- trivial baselines
def _task(i: int, answer: str, family: str = "f") -> Task:
    return Task(id=f"t{i}", question=f"q{i}", answer=answer, family=family, suite="jsonl")


def test_trivial_baseline_constant_and_majority_answers():
    tasks = [_task(i, "yes") for i in range(5)] + [
        _task(10 + i, a, "g") for i, a in enumerate(["1", "1", "2", "3"])
    ]
    assert trivial_baseline(tasks) == {"f": 1.0, "g": 0.5}
    # leave-one-out: each task copies the others' most common answer
    loo = trivial_baseline(tasks, leave_one_out=True)
    assert loo["f"] == 1.0 and loo["g"] == 0.5  # each '1' copies the other '1'; '2' and '3' get '1'
    distinct = [_task(i, str(i), "d") for i in range(4)]
    assert trivial_baseline(distinct) == {"d": 0.25}  # the constant only matches its own task
    assert trivial_baseline(distinct, leave_one_out=True) == {"d": 0.0}
    assert trivial_baseline([Task(id="x", question="q", answer=None, family="h", suite="humaneval")]) == {}


def test_trivial_baseline_uses_reasoning_gym_scorer():
    tasks = load_suite("reasoning-gym:letter_counting", n=30, seed=0).tasks()
    answers = [t.answer for t in tasks]
    top = max(set(answers), key=answers.count)
    base = trivial_baseline(tasks)["letter_counting"]
    assert base == pytest.approx(answers.count(top) / len(tasks))
    assert base > 0.3  # the honesty check: answering a constant is far from zero here
    spell = load_suite("reasoning-gym:spell_backward", n=10, seed=0).tasks()
    # all answers distinct, but the dataset's partial credit gives the constant more than 1/n
    assert trivial_baseline(spell)["spell_backward"] > 1 / 10
