# %% [markdown]
# # 02 · Train the parametric retriever
#
# Memento's parametric case-based reasoning learns Q(query, case): *does showing this case help
# solve this query?* A frozen sentence encoder embeds both texts and a small MLP head scores the
# pair (`memento_lab/memory/qnet.py`, a Lightning module). This notebook
#
# 1. loads retrieval pairs (the original Memento `training_data.jsonl`, a run's `pairs.jsonl`, or
#    pairs derived from the bank of notebook 01),
# 2. trains the head on CPU (or fine-tunes the encoder / uses a GPU, by parameter),
# 3. plots the validation curves from Lightning's CSV log and compares learned vs similarity-only
#    retrieval on held-out queries,
# 4. uses the checkpoint as a retriever over the bank, side by side with similarity.
#
# The checkpoint goes to `{out_dir}/checkpoints/retriever` (and to the repo's `checkpoints/` only
# when `save_to_checkpoints` is set).

# %% tags=["parameters"]
out_dir = "data/runs/notebooks"  # the shared run folder (notebook 01 wrote {out_dir}/bank)
smoke = False  # a quick run: `smoke_queries` queries, `smoke_epochs` epochs
bank = ""  # a bank folder; empty: {out_dir}/bank
pairs = "auto"  # auto (seed training_data.jsonl when present, else bank) | seed | bank | a pair file | a run folder
extra_pairs = ""  # comma-separated workbench pair logs or run folders (their pairs.jsonl) added to `pairs`
target = "helped"  # helped | reward | advantage | delta (the last two need a run's pairs.jsonl)
epochs = 20
smoke_epochs = 2
smoke_queries = 120
bank_pair_k = 4  # with pairs bank: cases retrieved per query
batch_size = 64
accelerator = "auto"  # auto | cpu | gpu
freeze_encoder = True  # False: fine-tune the encoder too (slow on CPU: ~6.6 s per step)
train_layers = 0  # when fine-tuning: train only the top N transformer layers (0: all)
seed = 0
query = ""  # the demo query for the side-by-side view; empty: a validation query
k = 4
save_to_checkpoints = False  # also copy the best checkpoint to checkpoints/retriever/

# %%
import random
from pathlib import Path

import polars as pl
from IPython.display import Markdown, display

from memento_lab.jsonl import atomic_write_bytes
from memento_lab.memory.bank.bank import CaseBank
from memento_lab.memory.bank.encoders import bank_encoder
from memento_lab.memory.learned.pair_data import split_by_query
from memento_lab.memory.learned.parametric import ParametricRetriever
from memento_lab.memory.learned.training import FitConfig, fit
from memento_lab.memory.retrieval.retrievers import SimilarityRetriever
from memento_lab.memory.sources import training_pairs
from memento_lab.views import plots, retrieval_plots, widgets

plots.use_notebook_renderer()
run = Path(out_dir)
bank_dir = Path(bank) if bank else run / "bank"
if not (bank_dir / "log.jsonl").exists():
    raise FileNotFoundError(f"{bank_dir}: no case bank here; run notebook 01 with out_dir={out_dir!r} first")
encoder = bank_encoder(bank_dir)
case_bank = CaseBank(bank_dir, encoder=encoder, readonly=True)
print(f"bank {bank_dir}: version {case_bank.version}, {len(case_bank)} cases")

# %% [markdown]
# ## Pairs
# The original pairs say, for each task (`query`) and each case shown while solving it, whether
# the task was then solved (`truth_label`, copied onto every case it saw). Without the seed data,
# `bank` derives pairs from the bank itself: every case, as a query, with the `bank_pair_k`
# most similar other cases, labelled by the query case's own outcome (the same copying rule).

# %%
kind, all_pairs = training_pairs(pairs, case_bank, k=bank_pair_k)
for extra in (x for x in extra_pairs.split(",") if x):  # workbench runs: per-case advantage, probe deltas
    all_pairs += training_pairs(extra, case_bank)[1]
queries = sorted({p.query for p in all_pairs})
if smoke:
    keep = set(random.Random(seed).sample(queries, min(smoke_queries, len(queries))))
    all_pairs = [p for p in all_pairs if p.query in keep]
    epochs = smoke_epochs
print(
    f"{len(all_pairs)} pairs over {len({p.query for p in all_pairs})} queries ({kind}); "
    f"{sum(p.helped for p in all_pairs)} helped"
)

# %% [markdown]
# ## Train
# Split by query (no query in both train and validation), class-weighted cross-entropy, best
# checkpoint by validation AUC. Head-only training embeds every text once (cached in the bank's
# `embeddings.sqlite`) and takes seconds per epoch on CPU.

# %%
ckpt_dir = run / "checkpoints" / "retriever"
config = FitConfig(  # the whole training run in one object (also: memento-lab retriever train --help)
    target=target,
    freeze_encoder=freeze_encoder,
    train_layers=train_layers,
    epochs=epochs,
    batch_size=batch_size,
    accelerator=accelerator,
    seed=seed,
)
result = fit(all_pairs, config, out=ckpt_dir, bank=bank_dir)
print(f"trained {result.epochs} epochs in {result.seconds} s -> {result.best_checkpoint}")
display(pl.DataFrame([result.split.model_dump()]))

# %% [markdown]
# **Look at:** validation AUC rising above 0.5 (chance) while the loss falls; the best epoch is the checkpoint.

# %%
display(retrieval_plots.training_curves(result.metrics_csv))

# %% [markdown]
# ## Learned vs similarity
# On the validation queries: pair AUC (does Q separate helpful from unhelpful pairs?) and, over
# queries whose cases have mixed labels, within-query AUC and precision@k (does it rank the
# helpful cases first?). On the seed pairs every query has one label across its cases, so pair
# AUC mostly measures which *queries* succeed; the within-query numbers need per-case signals.
# **Look at:** the learned bars against the similarity bars, metric by metric (0.5 is chance for AUC).

# %%
display(retrieval_plots.retriever_comparison(result))
display(
    pl.DataFrame(
        [
            {"retriever": name, **{key: m.get(key) for key in result.similarity}}
            for name, m in (("learned", result.learned), ("similarity", result.similarity))
        ]
    )
)

# %% [markdown]
# ## The checkpoint as a retriever over the bank
# The parametric retriever scores every case of the bank for a query (case vectors precomputed;
# one encoder pass per query) and returns the top k, like the similarity retriever does.
# **Look at:** the cases the two retrievers agree on, and the ones Q ranks up or down.

# %%
parametric = ParametricRetriever.from_checkpoint(
    case_bank, result.best_checkpoint or ckpt_dir, encoder=encoder
)
similarity = SimilarityRetriever(case_bank, encoder)
if not query:
    _, val_idx = split_by_query(all_pairs, 0.2, seed)
    query = all_pairs[val_idx[0]].query
display(
    widgets.compare_retrievers(
        query, {"similarity (cosine)": similarity, "parametric Q(query, case)": parametric}, k=k
    )
)

# %%
if save_to_checkpoints and result.best_checkpoint:
    dest = Path("checkpoints") / "retriever"
    for src in (Path(result.best_checkpoint), ckpt_dir / "summary.json"):
        atomic_write_bytes(dest / src.name, src.read_bytes())
    print("saved to", dest.resolve())
display(
    Markdown(
        f"Checkpoint: `{result.best_checkpoint}` · metrics: `{result.metrics_csv}` · "
        f"use it with `make_retriever('parametric', bank, checkpoint='{ckpt_dir}')`."
    )
)
