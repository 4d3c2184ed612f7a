# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 04 · Learning curves: does memory help, and which memory?
#
# First the instrument proves itself on two **controls**: a gain where memory must help, nothing
# where it cannot, each a paired comparison with 95% CIs. Then one **real-task learning curve**: the
# agent goes over the same task stream for several iterations while its case bank grows, without
# and with memory, with enough tasks that each point's 95% CI is about ±0.15 or tighter — so what
# memory does here is measured, not guessed from a few tasks. Paired comparisons against no memory,
# the trivial baseline (always answering the family's most common answer), failures counted apart.
#
# This is the lesson's size (`make demo`: about ten minutes on 2 cores, docs/notebooks.md). Each
# part that was cut is a parameter: the K sweep (`k_sweep`), the memory budget lab
# (`bank_policies`), and `full=True` runs the whole program: the planner-executor loop over memory
# modes (parametric too) and three task orders, the K sweep, the budget lab and both controls.

# %% tags=["parameters"]
out_dir = "data/runs/notebooks"
smoke = False
full = False  # the whole program (see above; docs/notebooks.md gives its time): overrides the sizes below
model = "qwen2.5-coder-1.5b"  # packaged model name or GGUF path (unset: MEMENTO_LOCAL_MODEL); endpoints win
suite = "reasoning-gym:spell_backward"  # the tasks: reasoning-gym:FAM1,FAM2 | humaneval[:0-20] | deepresearcher | jsonl:FILE | jsonl+llm:FILE | table:FILE?OPTIONS | bfcl:base | control:positive | control:negative | your own (memento-lab list suites)
n = 20  # tasks per family or source (humaneval without a slice: n problems; jsonl: every line)
iterations = 2  # epochs over the task stream (memory carries over)
agent = "direct-instant"  # the profile: planner-executor (the loop) | direct (the model alone: it reasons, then a final answer line) | direct-instant (the model alone, answering at once in JSON); the curve's profile
memories = "none,similarity"  # parametric runs only when notebook 02 left a checkpoint
orders = "0"  # task orders (0: suite order, else seeded shuffles), the CI spread
seed = 0  # seed of the task sample, random retrieval and online updates (a replication)
k = 2  # cases shown per episode: the top K (unless k_positive / k_negative are set)
k_sweep = ""  # extra K values for a similarity K sweep besides k, e.g. '1,4' ('' to skip)
tools = ""  # MCP tool servers of the executor, comma-separated ('' for none); the planner-executor's only
concurrency = 1  # episodes in flight at once; parallel slots add no throughput on 2 cores
load_runs = ""  # a folder of finished runs to plot instead of running
control_n = 10  # control tasks (each suite); 0 skips the controls
control_iterations = 3
control_agent = "direct-instant"  # multiple choice: the answer letter at once (docs/runs-and-reports.md)
online_update = True  # parametric: update the retriever's head after each episode; kept in <run>/retriever/
online_target = "reward"  # what the online update learns: reward | helped | advantage | delta
bank_policies = (
    ""  # the memory budget lab: bank policies x budgets, e.g. 'keep-all,one-per-task' ('' to skip)
)
memory_budgets = "150,600"  # memory-block token budgets of the budget lab

# %%
from pathlib import Path

import polars as pl
from IPython.display import Markdown, display

from memento_lab import ExperimentConfig, PairLog, build_report, load_results, run_sweep, summarize
from memento_lab.config import default_cassette_mode
from memento_lab.experiments.lesson import lesson_summary
from memento_lab.views import plots, retrieval_plots

plots.use_notebook_renderer()
if full:  # the whole program: the loop of notebook 03 over memory modes x three orders, K sweep, budget lab
    agent, n, k, tools, orders, concurrency = "planner-executor", 3, 4, "code", "0,1,2", 2
    memories, k_sweep = "none,similarity,parametric", "1"
    bank_policies, memory_budgets = "keep-all,one-per-task", "150,600"
    control_n, control_iterations = 10, 3
if smoke:  # CI: the small model, two tasks, two memory modes, one order, one K
    model, n, iterations, orders, k_sweep = "qwen2.5-coder-0.5b", min(n, 2), 2, "0", ""
    memories = "none,similarity"
    control_n, control_iterations = min(control_n, 3), 2
    bank_policies, memory_budgets = "", ""  # the costs of the smoke sweep's own arms are still shown
root = Path(load_runs) if load_runs else Path(out_dir)
sweep_dir = root / "sweep"
checkpoint = Path(out_dir) / "checkpoints" / "retriever" / "best.ckpt"
mems = [m for m in memories.split(",") if m and (m != "parametric" or checkpoint.exists())]
print(f"curve: {suite}, {n} tasks x {iterations} iterations, {agent}, memory {mems}, orders {orders}")
print(
    f"controls: {control_n} tasks x {control_iterations} iterations each"
    if control_n
    else "controls: skipped (control_n=0)"
)
for name, value, what in (("k_sweep", k_sweep, "K sweep"), ("bank_policies", bank_policies, "budget lab")):
    if not value:
        print(f"{what}: skipped ({name}=''; set it or full=True to run it, docs/notebooks.md gives its time)")

# %% [markdown]
# ## 1 · The instrument: two controls
# Multiple-choice questions about invented facts (no model knows them), answered at once with the
# retrieved cases (`control_agent="direct-instant"`: a letter, no reasoning), each without memory
# and with similarity memory on the same tasks. **Positive control**: the same questions come back
# each iteration, so memory of the question itself — its answer, or a wrong answer to avoid — must
# beat no memory by the last iteration (this measures *recall*). **Negative control**: memory never
# shows a task its own question and holds nothing about it, so the paired difference must stay at 0.

# %%
control_dir = root / "controls"
for kind in ("positive", "negative") if control_n and not load_runs else ():
    control = ExperimentConfig(
        suite=f"control:{kind}",
        n=control_n,
        iterations=control_iterations,
        agent=control_agent,
        k=2,
        tools=[],
        model=model,
        seed=seed,
        cassette="auto",
        out=str(control_dir / kind),
    )
    await run_sweep(control, memories=["none", "similarity"], seeds=[seed], orders=[0])
controls = {kind: control_dir / kind for kind in ("positive", "negative") if (control_dir / kind).exists()}
control_reps = {kind: build_report([path]) for kind, path in controls.items()}

# %% [markdown]
# **Look at:** the positive control's difference must climb above the dashed 0 line (its whole CI
# above it) by the last iteration, while the negative control's CI covers 0 at every iteration.

# %%
if control_reps:
    plots.paired_differences(
        {f"control:{kind}": rep.comparisons for kind, rep in control_reps.items()},
        title="The instrument: memory minus no memory on the same tasks (95% paired bootstrap CI)",
    ).show()
    display(
        pl.DataFrame(
            [
                {"control": kind, **c.model_dump()}
                for kind, rep in control_reps.items()
                for c in rep.comparisons
            ]
        ).select("control", "iteration", "diff", "ci_low", "ci_high", "p_value", "tasks")
    )
else:
    print("no controls in this run (control_n=0)")

# %% [markdown]
# **Look at:** accuracy per arm behind those differences: with memory the positive control climbs
# from guessing (about 1 in 4) while no memory stays flat; the negative control's two arms overlap.

# %%
if control_reps:
    control_rows = load_results(list(controls.values()))
    plots.learning_curves(
        control_rows,
        by="memory",
        facet_family=True,
        baselines={f: v for rep in control_reps.values() for f, v in rep.trivial_baseline.items()},
        title="Controls: accuracy per iteration (95% bootstrap CI over tasks)",
    ).show()

# %% [markdown]
# ## 2 · A real task: the learning curve (resumable: finished episodes are skipped)
# One model server serves every run; each run has its own case bank, traces, retrieval pairs and
# cassette in `sweep/<memory>-k<k>-s<seed>-o<order>/`. A repeated request (the same prompt in a later
# iteration without memory) is answered from the cassette. The profile is the cheapest that answers
# this family well: on spell_backward the model answering at once (`direct-instant`) scored as well as
# when it reasons first (`direct`; 0.32 vs 0.30 on 10 tasks) at under half the tokens and a quarter
# of the time per episode (docs/notebooks.md).

# %%
base = ExperimentConfig(
    suite=suite,
    n=n,
    iterations=iterations,
    k=k,
    seed=seed,
    model=model,
    agent=agent,
    checkpoint=str(checkpoint) if checkpoint.exists() else None,
    online_update=online_update,
    online_target=online_target,
    tools=[t for t in tools.split(",") if t],
    cassette=default_cassette_mode("auto"),  # MEMENTO_CASSETTE, else auto
    out=str(sweep_dir),
    concurrency=concurrency,
    max_cycles=1 if smoke else 2,
    max_steps=2 if smoke else 3,
)
if not load_runs:
    runs = await run_sweep(base, memories=mems, seeds=[seed], orders=[int(o) for o in orders.split(",")])
    ks = [int(x) for x in k_sweep.split(",") if x and int(x) != k]
    if ks and "similarity" in mems:  # the main similarity run (order 0) is the K = k point
        await run_sweep(
            base.model_copy(update={"out": str(sweep_dir / "k-sweep")}),
            memories=["similarity"],
            seeds=[seed],
            orders=[0],
            ks=ks,
        )

# %%
df = load_results([sweep_dir])
rep = build_report([sweep_dir])
print(f"{rep.runs} runs, {rep.episodes} scored episodes")
summarize(df, by=("arm", "iteration"))

# %% [markdown]
# **Look at:** whether the memory line leaves the no-memory line's band, and both against the
# dashed trivial baseline (the family's most common answer); each band is a 95% CI over tasks.

# %%
k_runs = load_results([sweep_dir / "k-sweep"]) if (sweep_dir / "k-sweep").exists() else pl.DataFrame()
main_runs = df.filter(~pl.col("run_id").is_in(k_runs["run_id"].to_list())) if not k_runs.is_empty() else df
plots.learning_curves(
    main_runs,
    by="memory",
    baselines=rep.trivial_baseline,
    title=f"{suite}: accuracy per iteration (95% bootstrap CI over tasks)",
).show()

# %% [markdown]
# ## Paired comparisons, learning gain, forgetting
# Each memory arm against no memory on the same tasks (difference, 95% paired bootstrap CI,
# permutation p-value); the gain from the first to the last iteration; tasks solved earlier and
# failed later.

# %%
display(pl.DataFrame([c.model_dump() for c in rep.comparisons]) if rep.comparisons else "no paired arms")
display(pl.DataFrame([g.model_dump() for g in rep.learning_gain]) if rep.learning_gain else "one iteration")
pl.DataFrame([f.model_dump() for f in rep.forgetting]) if rep.forgetting else None

# %% [markdown]
# ## Failures are counted, never scored
# Every attempt of every run by status: `ok` episodes are scored; endpoint errors, timeouts, tool
# server failures and judge errors are not answers (a resumed run retries them). Unusable model
# replies inside scored episodes are the model's own failures, counted apart.

# %%
pl.DataFrame([e.model_dump() for e in rep.errors])

# %% [markdown]
# **Look at:** (with several families) which families memory helps and which it hurts — one
# panel per family, each with its own trivial baseline.

# %%
if main_runs["family"].drop_nulls().n_unique() > 1:
    plots.learning_curves(main_runs, by="memory", facet_family=True, baselines=rep.trivial_baseline).show()
else:
    print("one family: the curve above is its panel")

# %% [markdown]
# ## K sweep: how many retrieved cases?
# **Look at:** whether accuracy at the last iteration rises or falls with K (more cases also cost
# prompt tokens).

# %%
if not k_runs.is_empty():
    at_k = main_runs.filter((pl.col("memory") == "similarity") & (pl.col("order") == 0))
    plots.k_sweep(pl.concat([at_k, k_runs], how="diagonal_relaxed")).show()
else:
    print("no K sweep in this run (k_sweep='')")

# %% [markdown]
# ## Retrieval diagnostics: which retrieved cases came with a better reward?
# Every episode logged one pair per case it was shown (reward, and the advantage over the task's
# earlier rewards); these pairs are the training data of the parametric retriever.
# **Look at:** whether shown positive cases come with higher rewards than shown negative ones.

# %%
pairs = [p for path in sorted(sweep_dir.glob("*/pairs.jsonl")) for p in PairLog(path).read()]
print(f"{len(pairs)} retrieval pairs")
if pairs:
    retrieval_plots.retrieval_diagnostics(pairs).show()

# %%
pl.DataFrame([p.model_dump() for p in rep.by_family]) if rep.by_family else None

# %% [markdown]
# ## What memory costs: bank policies x memory budgets
# Memory is not free: every shown case lengthens the prompt, and a bank only grows unless a policy
# evicts. The budget lab (`bank_policies`) runs the similarity arm under each bank policy (keep
# everything, one case per task, ...) and memory-block token budget on the same tasks, then sets
# reward against what it cost: prompt tokens of the memory block, cases kept.
# `reward_per_1k_prompt_tokens` carries a bootstrap CI over tasks. Without the lab, the curve's own arms.

# %%
budget_dir = root / "budget"
policies = [x for x in bank_policies.split(",") if x]
budgets = [int(x) for x in memory_budgets.split(",") if x]
if policies and budgets and not load_runs:
    await run_sweep(
        base.model_copy(update={"out": str(budget_dir)}),
        memories=["similarity"],
        seeds=[seed],
        orders=[0],
        vary={"bank_policy": policies, "memory_tokens": budgets},
    )
cost_rep = build_report([budget_dir]) if budget_dir.exists() else rep
display(
    pl.DataFrame([c.model_dump() for c in cost_rep.costs]).select(
        "label",
        "accuracy",
        "memory_tokens",
        "bank_size",
        "reward_per_1k_prompt_tokens",
        "ci_low",
        "ci_high",
        "reward_per_stored_case",
        "cache_share",
        "seconds",
    )
)

# %% [markdown]
# **Look at:** points further up at less cost to the left: reward against the memory block's tokens
# and against the bank's size, one point per arm.

# %%
plots.memory_costs(cost_rep.costs).show()

# %% [markdown]
# ## In three lines

# %%
display(Markdown("\n".join(f"- {line}" for line in lesson_summary(root).lines())))
