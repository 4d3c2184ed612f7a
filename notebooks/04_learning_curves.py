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
# A continual-learning sweep: the agent goes over the same task stream for several iterations
# while its case bank grows, once per memory mode (none / random / similarity / parametric),
# several task orders each. Accuracy per iteration with 95% confidence intervals over the runs,
# against the honest baselines (no memory; always answering the family's most common answer),
# a K sweep, and retrieval diagnostics: which retrieved cases came with a better reward.

# %% tags=["parameters"]
out_dir = "data/runs/notebooks"
smoke = False
model = "qwen2.5-coder-1.5b"
suite = "reasoning-gym:spell_backward"
n = 3  # tasks per family
iterations = 2
memories = "none,similarity,parametric"  # parametric runs only when notebook 02 left a checkpoint
orders = "0,1,2"  # task orders (0: suite order, else seeded shuffles), the CI spread
seed = 0
k = 4
k_sweep = "1"  # extra K values for the similarity K sweep, besides k ('' to skip)
tools = "code"
concurrency = 2  # episodes in flight (the embedded server gets as many parallel slots)
load_runs = ""  # a folder of finished runs to plot instead of running

# %%
from pathlib import Path

import polars as pl

from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.results import load_results, report, summarize
from memento_lab.experiments.sweep import run_sweep
from memento_lab.memory.pairs import PairLog
from memento_lab.views import plots

plots.use_notebook_renderer()
if smoke:  # CI: the small model, two tasks, two memory modes, one order, one K
    model, n, iterations, orders, k_sweep = "qwen2.5-coder-0.5b", min(n, 2), 2, "0", ""
    memories = "none,similarity"
sweep_dir = Path(load_runs) if load_runs else Path(out_dir) / "sweep"
checkpoint = Path(out_dir) / "checkpoints" / "retriever" / "best.ckpt"
mems = [m for m in memories.split(",") if m and (m != "parametric" or checkpoint.exists())]
print(f"memory modes: {mems}  orders: {orders}  runs in {sweep_dir}")

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
    tools=[t for t in tools.split(",") if t],
    cassette="auto",
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
rep = report([sweep_dir])
print(f"{rep['runs']} runs, {rep['episodes']} episodes")
summarize(df)

# %% [markdown]
# ## Accuracy per iteration, per memory mode (95% CI over task orders)
# The dashed line is the trivial baseline: always answering the family's most common answer.

# %%
k_runs = load_results([sweep_dir / "k-sweep"]) if (sweep_dir / "k-sweep").exists() else pl.DataFrame()
main_runs = df.filter(~pl.col("run_id").is_in(k_runs["run_id"].to_list())) if not k_runs.is_empty() else df
fig = plots.learning_curves(main_runs, baselines=rep["trivial_baseline"])
fig.show()

# %%
plots.learning_curves(main_runs, facet_family=True, baselines=rep["trivial_baseline"]).show()

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
    plots.retrieval_diagnostics(pairs).show()

# %%
pl.DataFrame(rep["by_family"]) if rep["by_family"] else None
