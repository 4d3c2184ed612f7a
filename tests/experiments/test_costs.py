"""What memory costs and returns: reward per 1k prompt tokens and per stored case, computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memento_lab.experiments.config import ExperimentConfig, ResultRow
from memento_lab.experiments.report import build_report
from memento_lab.experiments.stats import bootstrap_ratio
from memento_lab.jsonl import atomic_write_bytes
from memento_lab.trace import JudgeVerdict, LLMCall, PlanCycle, Trace, Usage


def test_bootstrap_ratio_is_the_ratio_of_sums_with_an_interval() -> None:
    num = np.array([[1.0, 0.0, 1.0, 1.0]])
    den = np.array([[2.0, 2.0, 2.0, 2.0]])
    ratio, lo, hi = bootstrap_ratio(num, den, seed=0)
    assert ratio == 3 / 8 and lo <= ratio <= hi and lo >= 0.0 and hi <= 0.5
    same, lo2, hi2 = bootstrap_ratio(np.ones((1, 5)), np.full((1, 5), 4.0))
    assert (same, lo2, hi2) == (0.25, 0.25, 0.25)  # constant per task: no spread
    assert np.isnan(bootstrap_ratio(np.ones((1, 3)), np.zeros((1, 3)))[0])


def run_folder(root: Path, policy: str, rewards: list[float], tokens: list[int], sizes: list[int]) -> Path:
    cfg = ExperimentConfig(
        suite="jsonl:none", n=len(rewards), memory="similarity", bank_policy=policy, iterations=1
    )
    out = root / policy
    cfg = cfg.model_copy(update={"out": str(out), "run_id": policy})
    out.mkdir(parents=True)
    atomic_write_bytes(out / "config.json", cfg.model_dump_json().encode())
    rows = []
    for i, (r, tok, size) in enumerate(zip(rewards, tokens, sizes, strict=True)):
        call = LLMCall(role="planner", model="m", usage=Usage(prompt_tokens=tok, completion_tokens=10))
        t = Trace(
            task_id=f"t{i}",
            question=f"q{i}",
            run_id=policy,
            cycles=[PlanCycle(index=0, final_answer="a", llm=call)],
            verdicts=[JudgeVerdict(judge="em", score=r, correct=r == 1.0)],
            reward=r,
            bank_size=size,
            memory_tokens=tok // 2,
        )
        rows.append(ResultRow.of(t, cfg).model_dump_json() + "\n")
    (out / "results.jsonl").write_text("".join(rows))
    return out


def test_report_costs_per_arm(tmp_path: Path) -> None:
    a = run_folder(tmp_path, "keep-all", [1.0, 1.0, 0.0, 1.0], [500, 500, 500, 500], [0, 1, 2, 3])
    b = run_folder(tmp_path, "lru", [1.0, 0.0, 0.0, 1.0], [250, 250, 250, 250], [0, 1, 2, 2])
    costs = {c.label.split("=")[-1]: c for c in build_report([a, b]).costs}
    assert set(costs) == {"keep-all", "lru"}
    keep, lru = costs["keep-all"], costs["lru"]
    assert keep.reward_per_1k_prompt_tokens == 3 / 2000 * 1000  # 3 reward over 2,000 tokens
    assert lru.reward_per_1k_prompt_tokens == 2 / 1000 * 1000
    assert keep.reward_per_stored_case == 3 / 3 and lru.reward_per_stored_case == 2 / 2
    assert keep.memory_tokens == 250 and lru.prompt_tokens == 250 and keep.bank_size == 1.5
    assert keep.ci_low <= keep.reward_per_1k_prompt_tokens <= keep.ci_high
