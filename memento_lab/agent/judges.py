"""Judges: score one answer against its gold answer(s), each returning a ``JudgeVerdict``.

- ``exact_match``, ``f1``, ``partial_match``: the string judges of DeepResearcher/Memento
  (SQuAD-style normalisation; a gold may be a list of accepted aliases, the best alias counts).
- ``llm_judge``: Memento's rubric (is the prediction semantically the same as at least one gold
  answer?), asked of any chat client; its failures give score 0 with the reason, never raise.
- ``unit_test_judge``: runs a program and its tests in the code sandbox (``memento_lab.sandbox``).
- ``agreement`` / ``judge_agreement``: how often two judges agree, with Cohen's kappa.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from memento_lab.trace import JudgeVerdict

Gold = str | Sequence[str]
_PUNCT = frozenset(string.punctuation)


# --------------------------------------------------------------------------- string judges
def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD style)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _golds(gold: Gold) -> list[str]:
    golds = [gold] if isinstance(gold, str) else [str(g) for g in gold]
    if not golds:
        raise ValueError("a judge needs at least one gold answer")
    return golds


def _no_answer(judge: str) -> JudgeVerdict:
    return JudgeVerdict(judge=judge, score=0.0, correct=False, detail="no answer")


def exact_match(pred: str | None, gold: Gold) -> JudgeVerdict:
    """1 if the normalised prediction equals a normalised gold answer."""
    if pred is None:
        return _no_answer("em")
    p = normalize_answer(pred)
    for g in _golds(gold):
        if p == normalize_answer(g):
            return JudgeVerdict(judge="em", score=1.0, correct=True, detail=f"matches {g!r}")
    return JudgeVerdict(judge="em", score=0.0, correct=False)


def _token_f1(pred: str, gold: str) -> float:
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def f1(pred: str | None, gold: Gold, *, threshold: float = 0.5) -> JudgeVerdict:
    """Token-level F1 against the best gold alias; ``correct`` when F1 >= ``threshold``."""
    if pred is None:
        return _no_answer("f1")
    score, best = max((_token_f1(pred, g), g) for g in _golds(gold))
    return JudgeVerdict(judge="f1", score=score, correct=score >= threshold, detail=f"best gold {best!r}")


def partial_match(pred: str | None, gold: Gold) -> JudgeVerdict:
    """PM: after normalisation, a gold answer is contained in the prediction or vice versa."""
    if pred is None:
        return _no_answer("pm")
    p = normalize_answer(pred)
    if p:
        for g in _golds(gold):
            n = normalize_answer(g)
            if n and (n in p or p in n):
                return JudgeVerdict(judge="pm", score=1.0, correct=True, detail=f"overlaps {g!r}")
    return JudgeVerdict(judge="pm", score=0.0, correct=False)


# --------------------------------------------------------------------------- LLM judge
class ChatResultLike(Protocol):
    content: str
    parsed: dict[str, Any] | None
    error: str | None


class ChatClient(Protocol):
    """What the LLM judge needs from ``memento_lab.agent.llm``: one async chat call."""

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ) -> Any: ...


# The rubric of Memento's judge (client/no_parametric_cbr.py), restated: the gold is a list of
# accepted answers; the prediction need not be verbatim, only mean the same as one of them.
JUDGE_PROMPT = """You grade answers to questions. You get a question, a list of reference answers \
(each one of them is an acceptable answer) and a predicted answer.

Decide whether the predicted answer correctly answers the question:
1. It does not have to repeat a reference answer word for word; it must mean the same thing \
for this question (same entity, number, date or fact).
2. It is correct if it matches at least one of the reference answers; extra words are fine as \
long as they do not change or contradict that answer.
3. It is incorrect if it is vague, gives several different answers, says it does not know, or \
states something else.

Question: {question}
Reference answers: {gold}
Predicted answer: {pred}

First explain your reasoning in one or two sentences, then give the verdict. Reply with JSON only:
{{"reasoning": "...", "verdict": "correct" or "incorrect"}}"""

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string"},
        "verdict": {"type": "string", "enum": ["correct", "incorrect"]},
    },
    "required": ["reasoning", "verdict"],
}


def parse_judge_reply(content: str, parsed: dict[str, Any] | None) -> tuple[str, str]:
    """``(verdict, reasoning)`` from a judge reply; raises ``ValueError`` when there is no verdict."""
    data = parsed
    if data is None:
        m = re.search(r"\{[\s\S]*\}", content or "")
        if m:
            try:
                data = json.loads(m.group(0))
            except json.JSONDecodeError:
                data = None
    if isinstance(data, dict):
        verdict = str(data.get("verdict", "")).strip().lower()
        reasoning = str(data.get("reasoning", ""))
    else:  # truncated or free-text JSON: look for the verdict field itself
        m = re.search(r'"verdict"\s*:\s*"(correct|incorrect)"', content or "", flags=re.I)
        verdict, reasoning = (m.group(1).lower() if m else ""), (content or "")[:300]
    if verdict not in ("correct", "incorrect"):
        raise ValueError(f"no correct/incorrect verdict in the judge reply: {(content or '')[:200]!r}")
    return verdict, reasoning


async def llm_judge(
    question: str,
    pred: str | None,
    gold: Gold,
    client: ChatClient,
    *,
    max_tokens: int | None = 256,
    calls: list[Any] | None = None,
) -> JudgeVerdict:
    """Ask ``client`` whether ``pred`` answers ``question`` like one of ``gold`` (Memento's rubric).

    The call record (``result.call``) is appended to ``calls`` when given. A cassette miss in replay
    is re-raised: replay must fail loudly, never turn into a quiet 0."""
    from memento_lab.agent.cassette import CassetteMiss

    if pred is None or not pred.strip():
        return _no_answer("llm")
    prompt = JUDGE_PROMPT.format(
        question=question, gold=json.dumps(_golds(gold), ensure_ascii=False), pred=pred
    )
    try:
        result = await client.chat(
            [{"role": "user", "content": prompt}],
            json_schema=JUDGE_SCHEMA,
            temperature=0.0,
            max_tokens=max_tokens,
        )
        if calls is not None and getattr(result, "call", None) is not None:
            calls.append(result.call)
        if getattr(result, "error", None):
            return JudgeVerdict(judge="llm", score=0.0, correct=False, detail=f"judge error: {result.error}")
        verdict, reasoning = parse_judge_reply(
            getattr(result, "content", "") or "", getattr(result, "parsed", None)
        )
    except CassetteMiss:
        raise
    except Exception as e:  # a judge failure is a verdict of 0 with the reason, never a crash
        return JudgeVerdict(
            judge="llm", score=0.0, correct=False, detail=f"judge error: {type(e).__name__}: {e}"
        )
    ok = verdict == "correct"
    return JudgeVerdict(judge="llm", score=float(ok), correct=ok, detail=reasoning)


# --------------------------------------------------------------------------- unit-test judge
async def unit_test_judge(
    program: str,
    tests: str,
    entry_point: str,
    *,
    workspace: Path | None = None,
    timeout_s: float = 10.0,
) -> JudgeVerdict:
    """Run ``program`` + ``tests`` + ``check(entry_point)`` in the code sandbox; 1 when it exits 0.

    Never executes the code in this process. ``workspace`` is the sandbox's writable folder (a
    fresh temporary one when None). A missing sandbox module raises ImportError (a set-up
    problem, not a verdict).
    """
    import anyio.to_thread

    from memento_lab.sandbox import run_python  # lazy: the sandbox is a separate component

    code = f"{program}\n\n{tests}\n\ncheck({entry_point})\n"
    try:  # run_python blocks (it waits for the child): keep the event loop free meanwhile
        res = await anyio.to_thread.run_sync(
            lambda: run_python(code, workspace=workspace, timeout_s=timeout_s)
        )
    except Exception as e:
        return JudgeVerdict(
            judge="unit_tests", score=0.0, correct=False, detail=f"sandbox error: {type(e).__name__}: {e}"
        )
    if res.timed_out:
        return JudgeVerdict(
            judge="unit_tests", score=0.0, correct=False, detail=f"timed out after {timeout_s:g} s"
        )
    if res.exit_code != 0:
        tail = (res.stderr or res.stdout or "").strip().splitlines()[-3:]
        return JudgeVerdict(
            judge="unit_tests", score=0.0, correct=False, detail=f"exit {res.exit_code}: " + " | ".join(tail)
        )
    return JudgeVerdict(
        judge="unit_tests", score=1.0, correct=True, detail=f"passed in {res.duration_s:.2f} s"
    )


# --------------------------------------------------------------------------- agreement
def agreement(a: Sequence[bool], b: Sequence[bool]) -> dict[str, float]:
    """Raw agreement and Cohen's kappa of two judges' correct/incorrect calls on the same answers.

    Kappa is 1.0 when both judges give one and the same label throughout (scikit-learn returns NaN).
    """
    from sklearn.metrics import cohen_kappa_score

    if len(a) != len(b):
        raise ValueError(f"agreement needs two equally long lists, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("agreement needs at least one judged answer")
    x, y = [bool(v) for v in a], [bool(v) for v in b]
    raw = sum(p == q for p, q in zip(x, y, strict=True)) / len(x)
    kappa = 1.0 if raw == 1.0 else float(cohen_kappa_score(x, y, labels=[False, True]))
    return {"n": float(len(x)), "agreement": raw, "kappa": kappa}


def judge_agreement(verdicts: Sequence[Sequence[JudgeVerdict]]) -> dict[str, dict[str, float]]:
    """Pairwise agreement between every two judges that scored the same answers.

    ``verdicts`` holds one list of verdicts per answer (e.g. ``[t.verdicts for t in traces]``);
    keys are ``"judgeA~judgeB"``; only answers both judges scored count.
    """
    names = sorted({v.judge for vs in verdicts for v in vs})
    out: dict[str, dict[str, float]] = {}
    for i, ja in enumerate(names):
        for jb in names[i + 1 :]:
            pairs = []
            for vs in verdicts:
                by = {v.judge: v.correct for v in vs}
                if ja in by and jb in by:
                    pairs.append((by[ja], by[jb]))
            if pairs:
                out[f"{ja}~{jb}"] = agreement([p for p, _ in pairs], [q for _, q in pairs])
    return out
