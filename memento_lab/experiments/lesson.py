"""The demo's closing summary: three lines (controls, curve, cost) read back from its run folder.

    lesson_summary("data/runs/demo-20260101-120000", seconds={"01_build_case_bank": 21.0, ...})

Notebook 04 writes ``controls/positive``, ``controls/negative`` (each a none and a similarity run on
the same tasks) and ``sweep/`` (the real-task curve); each line is computed from their reports, so
it says what the figures show: the paired difference at the last iteration with its 95% CI.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel

from memento_lab.experiments.report import Comparison, Report, build_report

CONTROLS = ("positive", "negative")


class LessonSummary(BaseModel):
    controls: str
    curve: str
    cost: str

    def lines(self) -> list[str]:
        return [self.controls, self.curve, self.cost]


def _short(label: str) -> str:
    """An arm's label without its profile (the lesson's arms share one) and the ``memory=`` key."""
    return " ".join(w for w in label.split() if not w.startswith("agent=")).removeprefix("memory=")


def _ci(lo: float, hi: float) -> str:
    return f"[{lo:+.2f}, {hi:+.2f}]"


def last_comparisons(rep: Report) -> list[Comparison]:
    """Each arm against ``memory=none`` at the last iteration of the scored split (test under the
    transfer protocol, else the stream)."""
    against_none = [c for c in rep.comparisons if c.b_label.endswith("memory=none")]
    if not against_none:
        return []
    split = "test" if any(c.split == "test" for c in against_none) else against_none[0].split
    last = max(c.iteration for c in against_none if c.split == split)
    return [c for c in against_none if c.split == split and c.iteration == last]


def _has_runs(path: Path) -> bool:
    return path.is_dir() and any(path.glob("*/results.jsonl"))


def control_verdict(kind: str, c: Comparison) -> str:
    """Whether a control did what it must: the positive one gains, the negative one shows nothing."""
    if kind == "positive":
        return "gains" if c.ci_low > 0 else "NO clear gain: this instrument cannot show recall here"
    covers = c.ci_low <= 0 <= c.ci_high
    return "shows nothing" if covers else "SHOWS an effect: memory leaks, or the arms differ"


def controls_line(folder: Path) -> str:
    """Each control's paired difference at its last iteration, and whether it did what it must."""
    parts = []
    for kind in CONTROLS:
        runs = folder / "controls" / kind
        found = last_comparisons(build_report([runs])) if _has_runs(runs) else []
        if not found:
            parts.append(f"{kind} not run")
            continue
        c = found[0]
        parts.append(
            f"{kind} {c.diff:+.2f} {_ci(c.ci_low, c.ci_high)} ({c.tasks} tasks, iteration {c.iteration}): "
            + control_verdict(kind, c)
        )
    return "controls, memory - none, paired: " + "; ".join(parts)


def curve_line(rep: Report | None) -> str:
    """The curve's last iteration: each arm's accuracy and its paired difference to no memory, and the
    widest 95% CI of any point (the lesson sizes the curve so that it is ±0.15 or tighter)."""
    if rep is None:
        return "curve: not run"
    suites = sorted({str(a.config.get("suite")) for a in rep.arms})
    profiles = sorted({str(a.config.get("agent")) for a in rep.arms})
    last = max(p.iteration for p in rep.curves)
    points = [p for p in rep.curves if p.iteration == last and p.split in ("stream", "test")]
    arms = ", ".join(
        f"{_short(p.label)} {p.accuracy:.2f} [{p.ci_low:.2f}, {p.ci_high:.2f}]"
        for p in sorted(points, key=lambda p: p.label)
    )
    diffs = "; ".join(
        f"{_short(c.a_label)} - none {c.diff:+.2f} {_ci(c.ci_low, c.ci_high)}" for c in last_comparisons(rep)
    )
    tasks = max((p.tasks for p in points), default=0)
    widest = max(((p.ci_high - p.ci_low) / 2 for p in rep.curves), default=0.0)
    baseline = ", ".join(f"{v:.2f}" for v in rep.trivial_baseline.values()) or "n/a"
    return (
        f"curve ({', '.join(suites)}, {', '.join(profiles)}, {tasks} tasks, iteration {last}): {arms}"
        + (f"; {diffs}" if diffs else "")
        + f"; trivial baseline {baseline}; widest 95% CI ±{widest:.2f}"
    )


def cost_line(rep: Report | None, seconds: Mapping[str, float] | None = None) -> str:
    """Wall time per notebook, and the prompt tokens the curve's episodes cost without and with memory."""
    parts = []
    if seconds:
        total = sum(seconds.values())
        each = ", ".join(f"{name[:2]} {s:.0f} s" for name, s in seconds.items())
        parts.append(f"{total / 60:.1f} min on this machine ({each})")
    if rep is not None:
        per_arm = ", ".join(
            f"{_short(c.label)} {c.prompt_tokens:.0f} (memory block {c.memory_tokens:.0f})"
            for c in sorted(rep.costs, key=lambda c: c.label)
        )
        parts.append(f"prompt tokens per curve episode: {per_arm}")
    return "cost: " + ("; ".join(parts) if parts else "nothing measured")


def lesson_summary(folder: str | Path, *, seconds: Mapping[str, float] | None = None) -> LessonSummary:
    """The three lines of a demo folder; ``seconds``: wall time per notebook (the runner's timings)."""
    folder = Path(folder)
    sweep = folder / "sweep"
    rep = build_report([sweep]) if _has_runs(sweep) else None
    return LessonSummary(controls=controls_line(folder), curve=curve_line(rep), cost=cost_line(rep, seconds))
