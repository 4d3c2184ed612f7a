# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 05 · The memory zoo: which memory makes the agent better, and at what price?
#
# Published memory methods re-implemented behind one interface and run under one protocol: the same
# task stream, task order, seed, model and judge for every method; the first attempt of a task is
# scored before its episode is written; memory learns from the judge's reward (the gold answer only
# in the labelled `feedback="gold"` variant). Memento's case bank (`similarity`) is one of them,
# `none` is the baseline every method is paired with.
#
# Then the **price**: a memory spends tokens twice, in the prompt (its block) and in maintenance
# (extraction, reflection, rewriting calls of the `memory` model role). The same tokens could buy
# self-consistency votes without memory (`none` with `samples` > 1): the cost table puts the two side
# by side. Last, a viewer of what each memory holds after the run and how it changed episode by
# episode. How to add a method of your own: `docs/memory-zoo.md`.

# %% tags=["parameters"]
out_dir = "data/runs/notebooks"
smoke = False
model = "qwen2.5-coder-1.5b"  # packaged model name or GGUF path (unset: MEMENTO_LOCAL_MODEL); endpoints win
suite = "reasoning-gym:letter_counting,spell_backward"  # the tasks: reasoning-gym:FAM1,FAM2 | humaneval[:0-20] | deepresearcher | jsonl:FILE | jsonl+llm:FILE | bfcl:base | control:positive | control:negative
n = 6  # tasks per family or source (humaneval without a slice: n problems; jsonl: every line)
iterations = 2  # epochs over the task stream (memory carries over)
methods = "all"  # comma-separated memory methods, or all (every registered one; parametric only with notebook 02's checkpoint)
k = 4  # cases shown per episode: the top K (unless k_positive / k_negative are set)
memory_tokens = 400  # token budget of the memory block (unset: everything the memory shows)
agent = "direct"  # direct: one answer at once with the retrieved cases (no executor)
seed = 0  # seed of the task sample, random retrieval and online updates (a replication)
votes = ""  # comma-separated vote counts of none (self-consistency, the compute-matched baseline)
load_runs = ""  # a folder of finished zoo runs to show instead of running

# %%
from pathlib import Path

import polars as pl
from IPython.display import display

from memento_lab.config import default_cassette_mode
from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.pricing import prices_frame
from memento_lab.experiments.report import build_report
from memento_lab.experiments.results import load_results, summarize
from memento_lab.experiments.run_memory import load_run_memory
from memento_lab.experiments.sweep import run_sweep
from memento_lab.memory.methods.registry import describe_methods, method_names
from memento_lab.views import plots
from memento_lab.views.memory_zoo import price_figure, zoo_viewer

plots.use_notebook_renderer()
if smoke:  # CI: the small model, one family, three tasks, a tight block
    model, suite, n, memory_tokens = "qwen2.5-coder-0.5b", "reasoning-gym:letter_counting", min(n, 3), 300
zoo_dir = Path(load_runs) if load_runs else Path(out_dir) / "zoo"
checkpoint = Path(out_dir) / "checkpoints" / "retriever" / "best.ckpt"  # written by notebook 02
names = method_names() if methods == "all" else [m.strip() for m in methods.split(",") if m.strip()]
names = [m for m in names if m != "parametric" or checkpoint.exists()]
pl.DataFrame([d for d in describe_methods() if d["name"] in names]).select("name", "keeps", "summary")

# %% [markdown]
# ## One stream, every method (resumable: finished episodes are skipped)
# One model server serves every run; each run keeps its memory in its own folder
# (`zoo/<method>-k<k>-s<seed>-o0/`: `bank/` for Memento's cases, `memory/log.jsonl` for the others)
# with its traces, rows and cassette.

# %%
base = ExperimentConfig(
    suite=suite,
    n=n,
    iterations=iterations,
    k=k,
    seed=seed,
    model=model,
    agent=agent,
    tools=[],
    memory_tokens=memory_tokens,
    checkpoint=str(checkpoint) if checkpoint.exists() else None,
    cassette=default_cassette_mode("auto"),
    out=str(zoo_dir),
)
vote_counts = [int(v) for v in votes.split(",") if v.strip()]
if not load_runs:
    await run_sweep(base, memories=names, seeds=[seed], orders=[0])
    if vote_counts and "samples" in ExperimentConfig.model_fields:  # beside them: none-k4-s0-o0-samples=N
        await run_sweep(
            base,
            memories=["none"],
            seeds=[seed],
            orders=[0],
            vary={"samples": vote_counts},
        )
    elif vote_counts:
        print("voting arms need ExperimentConfig.samples (the baselines issue): not in this version")

# %%
df = load_results([zoo_dir])
rep = build_report([zoo_dir])
print(f"{rep.runs} runs, {rep.episodes} scored episodes")
summarize(df, by=("memory", "iteration"))

# %% [markdown]
# ## Accuracy per iteration (95% bootstrap CI over tasks)
# The dashed line is the trivial baseline (always the family's most common answer).

# %%
plots.learning_curves(df, by="memory", baselines=rep.trivial_baseline).show()

# %% [markdown]
# ## The price of memory
# Per method over the whole stream: accuracy with its CI; the paired difference against `none` and
# against Memento's cases (`similarity`); maintenance calls and tokens per episode (the memory's own
# model calls, never counted as the agent's) and the share of their replies it threw away
# (`maintenance_unusable`: paid for, nothing changed); read tokens (its block in the prompt); seconds per
# episode (the write included); accuracy gained per 1M maintenance tokens and per 1M extra tokens;
# and the votes of `none` that would spend the same tokens (`matched_samples`). With voting arms in
# the folder (`none` with `--samples`, the compute-matched baseline), the closest in extra tokens
# stands beside each memory: memory minus voting paired over the tasks (`vs_voting`) and a verdict —
# a memory that costs more than voting and gains less says so.

# %%
table = prices_frame(rep.prices)
columns = [
    "label", "split", "accuracy", "ci_low", "ci_high", "vs_none", "vs_none_ci", "vs_cases", "vs_cases_ci",
    "maintenance_calls", "maintenance_tokens", "maintenance_unusable", "read_tokens", "extra_tokens", "seconds",
    "gain_per_1m_maintenance", "gain_per_1m_extra", "matched_samples", "voting", "vs_voting",
    "vs_voting_ci", "verdict",
]  # fmt: skip
display(table.select([c for c in columns if c in table.columns]))
price_figure(rep.prices, split="stream").show()

# %% [markdown]
# ## Paired comparisons per iteration, failures counted apart

# %%
display(pl.DataFrame([c.model_dump() for c in rep.comparisons]) if rep.comparisons else "no paired arms")
pl.DataFrame([e.model_dump() for e in rep.errors])

# %% [markdown]
# ## What each memory holds, and how it changed
# One tab per method. The slider walks the versions (one per episode written): the items the memory
# held then (insights with their counts, workflows, examples, cases...) and the write that made the
# version, op by op with the item before and after. Time travel is `method.at(v)`.

# %%
memories = {}
for run in sorted(p.parent for p in zoo_dir.glob("*/config.json")):  # a voting run is one more "none"
    memory = load_run_memory(run)
    memories.setdefault(memory.name, memory)
zoo_viewer(memories)
