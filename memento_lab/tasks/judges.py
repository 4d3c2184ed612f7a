"""Judges: score one answer against its gold answer(s), each returning a ``JudgeVerdict``.

- ``exact_match``, ``f1``, ``partial_match``: the string judges of DeepResearcher/Memento
  (SQuAD-style normalisation; a gold may be a list of accepted aliases, the best alias counts).
- ``llm_judge``: Memento's rubric (is the prediction semantically the same as at least one gold
  answer?), asked of any chat client, verdict first; a reply without a verdict is asked once more,
  then ``JudgeError`` (never a score of 0).
- ``unit_test_judge``: runs a program and its tests in two code sandboxes (``memento_lab.sandbox.isolation``)
  that exchange only plain data; passed only when the tests report it (``memento_lab.tasks.unit_harness``).
- ``cheap_first``: the order of judging a question-answer pair (exact match before the LLM).
- ``agreement`` / ``judge_agreement``: how often two judges agree (Cohen's kappa), and how often
  the LLM judge contradicts an exact match.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from memento_lab.tasks.prompts import judge_prompt
from memento_lab.trace import CassetteMiss, JudgeError, JudgeVerdict

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


def _contains_tokens(outer: list[str], inner: list[str]) -> bool:
    """``inner`` appears in ``outer`` as a contiguous run of whole tokens."""
    n = len(inner)
    return any(outer[i : i + n] == inner for i in range(len(outer) - n + 1))


def partial_match(pred: str | None, gold: Gold) -> JudgeVerdict:
    """PM: after normalisation, a gold answer's tokens appear as a contiguous run of whole tokens in
    the prediction or vice versa ("1945" matches "in 1945"; "1" does not match "1945")."""
    if pred is None:
        return _no_answer("pm")
    p = normalize_answer(pred).split()
    if p:
        for g in _golds(gold):
            n = normalize_answer(g).split()
            if n and (_contains_tokens(p, n) or _contains_tokens(n, p)):
                return JudgeVerdict(judge="pm", score=1.0, correct=True, detail=f"overlaps {g!r}")
    return JudgeVerdict(judge="pm", score=0.0, correct=False)


# --------------------------------------------------------------------------- LLM judge
class SupportsChat(Protocol):
    """What the LLM judge needs of a model client (``memento_lab.agent.models.llm.ChatClient``): one async chat call."""

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ) -> Any: ...


# The rubric of Memento's judge (client/no_parametric_cbr.py) is restated in tasks/prompts/judge.toml
# (``judge_prompt``): the gold is a list of accepted answers; the prediction need not be verbatim, only
# mean the same as one of them.
REASON_CHARS = 200  # a reason of <= 200 characters is < 80 tokens: with the verdict it fits the budget

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["correct", "incorrect"]},
        "reason": {"type": "string", "maxLength": REASON_CHARS},
    },
    "required": ["verdict", "reason"],
}


def parse_judge_reply(content: str, parsed: dict[str, Any] | None) -> tuple[str, str]:
    """``(verdict, reason)`` from a judge reply; raises ``ValueError`` when there is no verdict.

    A reply cut off after a complete ``"verdict"`` field still counts (the decision was made)."""
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
        reason = str(data.get("reason", data.get("reasoning", "")))
    else:  # truncated or free-text JSON: look for the verdict field itself
        m = re.search(r'"verdict"\s*:\s*"(correct|incorrect)"', content or "", flags=re.I)
        verdict, reason = (m.group(1).lower() if m else ""), (content or "")[:300]
    if verdict not in ("correct", "incorrect"):
        raise ValueError(f"no correct/incorrect verdict in the judge reply: {(content or '')[:200]!r}")
    return verdict, reason


async def llm_judge(
    question: str,
    pred: str | None,
    gold: Gold,
    client: SupportsChat,
    *,
    max_tokens: int = 256,
    calls: list[Any] | None = None,
) -> JudgeVerdict:
    """Ask ``client`` whether ``pred`` answers ``question`` like one of ``gold`` (Memento's rubric).

    A reply without a readable verdict (cut off, not JSON, an endpoint error) is asked once more,
    with a note and twice the budget (a different request, so a cassette keeps both); when that
    fails too, ``JudgeError`` is raised: a judge failure is never a score. Each call record is
    appended to ``calls`` when given. A cassette miss in replay is re-raised as it is."""
    if pred is None or not pred.strip():
        return _no_answer("llm")
    rubric, retry_note = judge_prompt()
    prompt = rubric.format(question=question, gold=json.dumps(_golds(gold), ensure_ascii=False), pred=pred)
    problems: list[str] = []
    for attempt, (text, budget) in enumerate([(prompt, max_tokens), (prompt + retry_note, 2 * max_tokens)]):
        try:
            result = await client.chat(
                [{"role": "user", "content": text}],
                json_schema=JUDGE_SCHEMA,
                temperature=0.0,
                max_tokens=budget,
            )
            if calls is not None and getattr(result, "call", None) is not None:
                calls.append(result.call)
            content = getattr(result, "content", "") or ""
            try:  # a verdict that was written before the reply broke off still counts
                verdict, reason = parse_judge_reply(content, getattr(result, "parsed", None))
            except ValueError:
                if getattr(result, "error", None):
                    raise ValueError(str(result.error)) from None
                raise
        except CassetteMiss:
            raise
        except Exception as e:
            problems.append(f"attempt {attempt + 1}: {type(e).__name__}: {e}")
            continue
        ok = verdict == "correct"
        note = " (on the second attempt)" if attempt else ""
        return JudgeVerdict(judge="llm", score=float(ok), correct=ok, detail=reason + note)
    raise JudgeError("the LLM judge gave no verdict: " + " | ".join(problems))


async def llm_audit(
    question: str, pred: str | None, gold: Gold, client: SupportsChat, *, calls: list[Any] | None = None
) -> JudgeVerdict | None:
    """The LLM judge's verdict where another judge decides (for agreement); None when it fails."""
    try:
        return await llm_judge(question, pred, gold, client, calls=calls)
    except JudgeError:
        return None


async def cheap_first(
    question: str,
    pred: str | None,
    gold: Gold,
    client: SupportsChat | None,
    *,
    judge: str = "llm",
    audit: bool = False,
    calls: list[Any] | None = None,
) -> list[JudgeVerdict]:
    """EM, F1 and PM always, the deciding verdict first.

    ``judge="llm"``: the cheap judges settle what they can without a call (an answer equal to a
    gold alias after normalisation is correct, no answer is wrong); the LLM judges the rest, and
    a failure there raises ``JudgeError``. Another ``judge`` (em, f1, pm) decides alone; ``audit``
    also asks the LLM where it did not decide (its verdict is kept for agreement, never the reward).
    """
    cheap = {"em": exact_match(pred, gold), "f1": f1(pred, gold), "pm": partial_match(pred, gold)}
    settled = cheap["em"].correct or pred is None or not pred.strip()
    llm = None
    if client is not None and judge == "llm" and not settled:
        llm = await llm_judge(question, pred, gold, client, calls=calls)
    elif client is not None and audit:
        llm = await llm_audit(question, pred, gold, client, calls=calls)
    if judge == "llm":
        first = cheap["em"] if settled or llm is None else llm
    else:
        first = cheap[judge]
    return [first, *(v for v in [*cheap.values(), llm] if v is not None and v is not first)]


# --------------------------------------------------------------------------- unit-test judge
async def unit_test_judge(
    program: str,
    tests: str,
    entry_point: str,
    *,
    prompt: str | None = None,
    workspace: Path | None = None,
    timeout_s: float = 10.0,
) -> JudgeVerdict:
    """Run ``check(entry_point)`` from ``tests`` against ``program``, the two in separate sandboxes.

    The candidate (``program``) runs in one sandboxed process, the tests in another, with the
    ``prompt``'s definitions (the helpers a task gives: the tests use these, not the program's);
    the two exchange only plain data (``memento_lab.tasks.unit_harness``). Passed only when the
    checker reports it after ``check`` returned. Never executes the code in this process.
    ``workspace`` is the candidate's writable folder (a fresh temporary one when None).
    """
    import anyio.to_thread

    try:  # the sandboxes block while they run: keep the event loop free meanwhile
        return await anyio.to_thread.run_sync(
            lambda: _judge_apart(program, tests, entry_point, prompt, workspace, timeout_s)
        )
    except Exception as e:
        return _unit(False, f"sandbox error: {type(e).__name__}: {e}")


def _judge_apart(
    program: str, tests: str, entry_point: str, prompt: str | None, workspace: Path | None, timeout_s: float
) -> JudgeVerdict:
    import os

    from memento_lab.sandbox.isolation import SandboxLimits, describe_signal, sandboxed
    from memento_lab.tasks import unit_harness

    source = Path(unit_harness.__file__).read_text(encoding="utf-8")
    limits = SandboxLimits(timeout_s=timeout_s)
    calls_r, calls_w = os.pipe()  # checker -> candidate
    answers_r, answers_w = os.pipe()  # candidate -> checker
    pipes = [calls_r, calls_w, answers_r, answers_w]
    serve = f"{source}\n\nserve({program!r}, {entry_point!r})\n"
    check = f"{source}\n\ncheck({prompt!r}, {tests!r}, {entry_point!r}, {calls_w})\n"
    try:
        with (
            sandboxed(
                serve, limits=limits, workspace=workspace, stdin=calls_r, stdout=answers_w
            ) as candidate,
            sandboxed(check, limits=limits, stdin=answers_r, pass_fds=(calls_w,)) as checker,
        ):
            for fd in pipes:  # only the two processes hold the pipes now: an end closes when one dies
                os.close(fd)
            pipes.clear()
            checker.wait(timeout_s)
            verdict, their = checker.stop(), candidate.stop()
    finally:
        for fd in pipes:
            os.close(fd)
    note = "" if verdict.isolation == "bwrap" else f" (judged without bubblewrap: {verdict.isolation})"
    try:
        reported = json.loads(verdict.stdout.strip().splitlines()[-1])
        passed, detail = reported["passed"] is True, str(reported["detail"])
    except (IndexError, ValueError, KeyError, TypeError):
        if verdict.timed_out:
            return _unit(False, f"timed out after {timeout_s:g} s" + note)
        tail = " | ".join((verdict.stderr or "").strip().splitlines()[-3:])
        return _unit(False, f"the tests never reported ({describe_signal(verdict.exit_code)}). {tail}" + note)
    if passed:
        return _unit(True, detail + note)
    last = ((their.stderr or "").strip().splitlines() or [""])[-1].strip()  # e.g. the program's exception
    said = f" (the candidate's stderr: {last[:200]})" if last and last not in detail else ""
    return _unit(False, f"failed: {detail}{said}{note}")


def _unit(passed: bool, detail: str) -> JudgeVerdict:
    return JudgeVerdict(judge="unit_tests", score=float(passed), correct=passed, detail=detail.strip())


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


def _labels(item: Any) -> dict[str, bool]:
    """``{judge: correct}`` of one episode: a result row (its ``judges`` JSON), a trace, or verdicts."""
    if isinstance(item, dict):
        raw = item.get("judges") or "{}"
        labels = json.loads(raw) if isinstance(raw, str) else raw
        return {str(k): bool(v) for k, v in labels.items()}
    verdicts = getattr(item, "verdicts", item)
    return {v.judge: v.correct for v in verdicts}


def judge_agreement(rows: Sequence[Any]) -> dict[str, Any]:
    """How far the judges of a set of episodes agree, for the report.

    ``rows`` are result rows (dicts with a ``judges`` JSON object ``{judge: correct}``), traces, or
    lists of verdicts. Returns ``pairs``: raw agreement and Cohen's kappa for every two judges that
    scored the same episodes (keys ``"judgeA~judgeB"``, only episodes both scored count);
    ``llm_vs_em``: of the episodes where both ran, how many exact matches the LLM judge called
    incorrect (``rejects_exact``, its ``share`` of ``exact``) and how many non-matches it accepted;
    ``decided_by``: how many episodes each judge decided (rows and traces that record it).
    """
    episodes = [_labels(r) for r in rows]
    names = sorted({j for labels in episodes for j in labels})
    pairs: dict[str, dict[str, float]] = {}
    for i, ja in enumerate(names):
        for jb in names[i + 1 :]:
            both = [(lab[ja], lab[jb]) for lab in episodes if ja in lab and jb in lab]
            if both:
                pairs[f"{ja}~{jb}"] = agreement([p for p, _ in both], [q for _, q in both])
    both = [(lab["em"], lab["llm"]) for lab in episodes if "em" in lab and "llm" in lab]
    exact = [llm for em, llm in both if em]
    other = [llm for em, llm in both if not em]
    rejects = sum(not ok for ok in exact)
    decided = Counter(
        d
        for r in rows
        if (d := r.get("decided_by") if isinstance(r, dict) else getattr(r, "decided_by", None))
    )
    return {
        "pairs": pairs,
        "llm_vs_em": {
            "n": len(both),
            "exact": len(exact),
            "rejects_exact": rejects,
            "share": rejects / len(exact) if exact else None,
            "non_exact": len(other),
            "accepts_non_exact": sum(other),
        },
        "decided_by": dict(decided),
    }
