"""The demo's three-line summary, read back from run folders shaped like notebook 04's."""

from __future__ import annotations

from pathlib import Path

from memento_lab.experiments.config import ExperimentConfig, ResultRow
from memento_lab.experiments.lesson import lesson_summary
from memento_lab.experiments.report import build_report
from memento_lab.jsonl import atomic_write_bytes
from memento_lab.trace import JudgeVerdict, LLMCall, PlanCycle, Trace, Usage


def run_folder(out: Path, suite: str, memory: str, rewards: list[list[float]], *, tokens: int = 100) -> None:
    """A finished run: ``rewards[iteration][task]``; each episode used ``tokens`` prompt tokens."""
    cfg = ExperimentConfig(
        suite=suite,
        n=len(rewards[0]),
        memory=memory,
        iterations=len(rewards),
        agent="direct-instant",  # arm labels name the profile: the summary names it once
    )
    cfg = cfg.model_copy(update={"out": str(out), "run_id": f"{suite}-{memory}"})
    out.mkdir(parents=True)
    atomic_write_bytes(out / "config.json", cfg.model_dump_json().encode())
    rows = []
    for it, per_task in enumerate(rewards):
        for i, r in enumerate(per_task):
            call = LLMCall(role="planner", model="m", usage=Usage(prompt_tokens=tokens, completion_tokens=5))
            t = Trace(
                task_id=f"{suite}:{i}",
                question=f"{suite} q{i}",
                run_id=cfg.run_id,
                iteration=it,
                family=suite,
                cycles=[PlanCycle(index=0, final_answer="a", llm=call)],
                verdicts=[JudgeVerdict(judge="em", score=r, correct=r == 1.0)],
                reward=r,
                memory_tokens=0 if memory == "none" else tokens // 2,
            )
            rows.append(ResultRow.of(t, cfg).model_dump_json() + "\n")
    (out / "results.jsonl").write_text("".join(rows))


def last_ci(runs: Path) -> str:
    (c,) = [c for c in build_report([runs]).comparisons if c.iteration == 1]
    assert c.ci_low > 0  # the fixture's gain is clear
    return f"[{c.ci_low:+.2f}, {c.ci_high:+.2f}]"


def demo_folder(root: Path, negative_with_memory: list[float]) -> Path:
    chance = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    for kind, last in (("positive", [1.0] * 8), ("negative", negative_with_memory)):
        run_folder(root / "controls" / kind / "none", f"control:{kind}", "none", [chance, chance])
        run_folder(root / "controls" / kind / "similarity", f"control:{kind}", "similarity", [chance, last])
    tasks = [0.5, 0.0, 1.0, 0.5, 0.0, 0.5]
    run_folder(root / "sweep" / "none", "rg", "none", [tasks, tasks], tokens=60)
    run_folder(root / "sweep" / "similarity", "rg", "similarity", [tasks, tasks], tokens=160)
    return root


def test_summary_says_what_the_controls_and_the_curve_show(tmp_path: Path) -> None:
    folder = demo_folder(tmp_path, negative_with_memory=[0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    s = lesson_summary(folder, seconds={"01_build_case_bank": 20.0, "04_learning_curves": 340.0})
    assert len(s.lines()) == 3
    # positive: 0.25 -> 1.0 on every task: +0.75 with the report's paired CI (above 0); negative: identical arms
    assert (
        f"positive +0.75 {last_ci(folder / 'controls' / 'positive')} (8 tasks, iteration 1): gains"
        in s.controls
    )
    assert "negative +0.00 [+0.00, +0.00] (8 tasks, iteration 1): shows nothing" in s.controls
    assert s.curve.startswith("curve (rg, direct-instant, 6 tasks, iteration 1): none 0.42 [0.17, 0.67], ")
    assert "; similarity - none +0.00 [+0.00, +0.00]; " in s.curve
    assert s.curve.endswith("; trivial baseline n/a; widest 95% CI ±0.25")  # [0.17, 0.67]: wider than ±0.15
    assert s.cost.startswith("cost: 6.0 min on this machine (01 20 s, 04 340 s)")
    assert "none 60 (memory block 0), similarity 160 (memory block 80)" in s.cost


def test_summary_flags_a_control_that_fails(tmp_path: Path) -> None:
    folder = demo_folder(tmp_path, negative_with_memory=[1.0] * 8)  # memory "helps" where it cannot
    s = lesson_summary(folder)
    ci = last_ci(folder / "controls" / "negative")
    assert f"negative +0.75 {ci} (8 tasks, iteration 1): SHOWS an effect" in s.controls
    assert s.cost.startswith("cost: prompt tokens per curve episode")  # no timings given


def test_summary_of_a_folder_without_runs(tmp_path: Path) -> None:
    s = lesson_summary(tmp_path)
    assert s.lines() == [
        "controls, memory - none, paired: positive not run; negative not run",
        "curve: not run",
        "cost: nothing measured",
    ]
