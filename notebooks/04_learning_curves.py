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
# First the **controls**: can this instrument detect a gain where memory must help, and does it
# stay at zero where memory cannot help? Then a continual-learning sweep: the agent goes over the
# same task stream for several iterations while its case bank grows, once per memory mode (none /
# random / similarity / parametric), several task orders each. Accuracy per iteration with 95%
# bootstrap intervals over tasks (and runs), paired comparisons against no memory, against the
# trivial baseline (always answering the family's most common answer), failures counted apart,
# a K sweep, and retrieval diagnostics: which retrieved cases came with a better reward.

# %% tags=["parameters"]
out_dir = "data/runs/notebooks"
smoke = False
model = "qwen2.5-coder-1.5b"  # packaged model name or GGUF path (unset: MEMENTO_LOCAL_MODEL); endpoints win
suite = "reasoning-gym:spell_backward"  # the tasks: reasoning-gym:FAM1,FAM2 | humaneval[:0-20] | deepresearcher | jsonl:FILE | jsonl+llm:FILE | table:FILE?OPTIONS | bfcl:base | control:positive | control:negative | your own (memento-lab list suites)
n = 3  # tasks per family or source (humaneval without a slice: n problems; jsonl: every line)
iterations = 2  # epochs over the task stream (memory carries over)
memories = "none,similarity,parametric"  # parametric runs only when notebook 02 left a checkpoint
orders = "0,1,2"  # task orders (0: suite order, else seeded shuffles), the CI spread
seed = 0  # seed of the task sample, random retrieval and online updates (a replication)
k = 4  # cases shown per episode: the top K (unless k_positive / k_negative are set)
k_sweep = "1"  # extra K values for the similarity K sweep, besides k ('' to skip)
tools = "code"  # MCP tool servers of the executor, comma-separated ('' for none)
concurrency = 2  # episodes in flight at once; the embedded server gets as many parallel slots
load_runs = ""  # a folder of finished runs to plot instead of running
control_n = 10  # control tasks (each suite); 0 skips the controls
control_iterations = 3
online_update = True  # parametric: update the retriever's head after each episode; kept in <run>/retriever/
online_target = "reward"  # what the online update learns: reward | helped | advantage | delta
bank_policies = "keep-all,one-per-task"  # the memory budget lab: bank policies x budgets ('' to skip)
memory_budgets = "150,600"  # memory-block token budgets of the budget lab

# %%
from pathlib import Path

import polars as pl
from IPython.display import display

from memento_lab.config import default_cassette_mode
from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.report import build_report
from memento_lab.experiments.results import load_results, summarize
from memento_lab.experiments.sweep import run_sweep
from memento_lab.memory.retrieval.pairs import PairLog
from memento_lab.views import plots, retrieval_plots

plots.use_notebook_renderer()
if smoke:  # CI: the small model, two tasks, two memory modes, one order, one K
    model, n, iterations, orders, k_sweep = "qwen2.5-coder-0.5b", min(n, 2), 2, "0", ""
    memories = "none,similarity"
    control_n, control_iterations = min(control_n, 3), 2
    bank_policies, memory_budgets = "", ""  # the costs of the smoke sweep's own arms are still shown
sweep_dir = Path(load_runs) if load_runs else Path(out_dir) / "sweep"
checkpoint = Path(out_dir) / "checkpoints" / "retriever" / "best.ckpt"
mems = [m for m in memories.split(",") if m and (m != "parametric" or checkpoint.exists())]
print(f"memory modes: {mems}  orders: {orders}  runs in {sweep_dir}")

# %% [markdown]
# ## Controls: the instrument, before the real task families
# Multiple-choice questions about invented facts (no model knows them), answered directly with the
# retrieved cases (`agent="direct"`). **Positive control**: the same questions come back each
# iteration, so memory of the question itself gives the answer: memory (similarity) must beat no
# memory, the paired CI above 0 by the last iteration. This measures *recall*. **Negative
# control**: memory never shows a task its own question and holds nothing about it: the paired
# CI must cover 0. The dashed line is the trivial baseline (the best constant letter).

# %%
control_dir = (Path(load_runs) if load_runs else Path(out_dir)) / "controls"
for kind in ("positive", "negative") if control_n else ():
    if not load_runs:
        control = ExperimentConfig(
            suite=f"control:{kind}",
            n=control_n,
            iterations=control_iterations,
            agent="direct",
            k=2,
            tools=[],
            model=model,
            seed=seed,
            cassette="auto",
            out=str(control_dir / kind),
        )
        await run_sweep(control, memories=["none", "similarity"], seeds=[seed], orders=[0])
    control_rep = build_report([control_dir / kind])
    plots.learning_curves(
        load_results([control_dir / kind]),
        by="arm",
        baselines=control_rep.trivial_baseline,
        title=f"control:{kind}: accuracy per iteration (95% bootstrap CI over tasks)",
    ).show()
    display(
        pl.DataFrame([c.model_dump() for c in control_rep.comparisons]).select(
            "a_label", "b_label", "measures", "iteration", "diff", "ci_low", "ci_high", "p_value", "tasks"
        )
    )

# %% [markdown]
# ## Run the sweep (resumable: finished episodes are skipped)
# One model server and one set of tool servers serve every run; each run has its own case bank,
# traces, retrieval pairs and cassette in `sweep/<memory>-k<k>-s<seed>-o<order>/`.

# %%
base = ExperimentConfig(
    suite=suite,
    n=n,
    iterations=iterations,
    k=k,
    seed=seed,
    model=model,
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
# ## Failures are counted, never scored
# Every attempt of every run by status: `ok` episodes are scored; endpoint errors, timeouts, tool
# server failures and judge errors are not answers (a resumed run retries them). Unusable model
# replies inside scored episodes are the model's own failures, counted apart.

# %%
pl.DataFrame([e.model_dump() for e in rep.errors])

# %% [markdown]
# ## Accuracy per iteration, per arm (95% bootstrap CI over tasks and task orders)
# The dashed line is the trivial baseline: always answering the family's most common answer.

# %%
k_runs = load_results([sweep_dir / "k-sweep"]) if (sweep_dir / "k-sweep").exists() else pl.DataFrame()
main_runs = df.filter(~pl.col("run_id").is_in(k_runs["run_id"].to_list())) if not k_runs.is_empty() else df
fig = plots.learning_curves(main_runs, by="memory", baselines=rep.trivial_baseline)
fig.show()

# %%
plots.learning_curves(main_runs, by="memory", facet_family=True, baselines=rep.trivial_baseline).show()

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
# ## K sweep: how many retrieved cases?

# %%
if not k_runs.is_empty():
    at_k = main_runs.filter((pl.col("memory") == "similarity") & (pl.col("order") == 0))
    plots.k_sweep(pl.concat([at_k, k_runs], how="diagonal_relaxed")).show()
else:
    print("no K sweep in this run (k_sweep='')")

# %% [markdown]
# ## Retrieval diagnostics: which retrieved cases came with a better reward?
# Every episode logged one pair per case it was shown (reward, and the advantage over the
# task's earlier rewards). These pairs are the training data of the parametric retriever.

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
# evicts. The budget lab runs the similarity arm under each bank policy (keep everything, one case
# per task, ...) and memory-block token budget on the same tasks, then sets reward against what it
# cost: prompt tokens of the memory block, cases kept. `reward_per_1k_prompt_tokens` carries a
# bootstrap CI over tasks; the paired comparisons above apply to these arms too.

# %%
budget_dir = (Path(load_runs) if load_runs else Path(out_dir)) / "budget"
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
plots.memory_costs(cost_rep.costs).show()
