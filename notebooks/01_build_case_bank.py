# %% [markdown]
# # 01 · Build a case bank
#
# A case bank is the agent's memory: past tasks with their plans, answers and rewards (Memento's
# case-based reasoning). This notebook
#
# 1. imports cases (the original Memento files, the packaged demo file, another bank or a run folder),
# 2. shows them in a browser widget (filter by label and source, search by similarity),
# 3. removes duplicates and cases that leak evaluation tasks into memory,
# 4. saves the bank as a **versioned** folder (every write is a version; `bank.at(v)` travels back).
#
# The bank lands in `{out_dir}/bank`; notebook 02 trains a retriever on it.

# %% tags=["parameters"]
out_dir = "data/runs/notebooks"  # the shared run folder of notebooks 01-04
smoke = False  # a quick run: at most `smoke_cases` cases
source = (
    "auto"  # auto (seed data when present, else demo) | seed | demo | a .jsonl file | a bank or run folder
)
fmt = "memento"  # format of a .jsonl source: memento | dummy_memo | memento_pairs
smoke_cases = 200
dedupe_threshold = 0.95  # cosine similarity above which two questions with the same label are duplicates
eval_suite = "reasoning-gym:spell_backward"  # the evaluation split memory must not leak
eval_n = 50  # tasks per family of the evaluation split
eval_seed = 0
leakage_threshold = 0.9
leakage_action = "remove"  # remove | flag

# %%
from pathlib import Path

import polars as pl
from IPython.display import Markdown, display
from tqdm.auto import tqdm

from memento_lab.memory.bank.bank import CaseBank
from memento_lab.memory.bank.dedupe import dedupe, leakage_report
from memento_lab.memory.bank.encoders import bank_encoder
from memento_lab.memory.retrieval.retrievers import SimilarityRetriever
from memento_lab.memory.sources import case_sources
from memento_lab.tasks.suites import load_suite
from memento_lab.views import plots, widgets

plots.use_notebook_renderer()
pl.Config.set_fmt_str_lengths(80)
run = Path(out_dir)
bank_dir = run / "bank"
print("run folder:", run.resolve())

# %% [markdown]
# ## Import
# `auto` uses the original Memento files in `../shared/data/memento-seed` when this machine has
# them (1,278 cases of multi-hop QA), else the small demo file packaged with `memento_lab`.
# Each file becomes one write (one version) of the bank.

# %%
sources = case_sources(source, fmt)
for s in sources:
    for err in s.errors[:5]:
        print("skipped:", err)
imports = [(s.name, s.cases) for s in sources]  # (name, cases)
if smoke:
    budget, trimmed = smoke_cases, []
    for name, cases in imports:
        trimmed.append((name, cases[:budget]))
        budget = max(0, budget - len(cases))
    imports = trimmed
display(pl.DataFrame({"source": [n for n, _ in imports], "cases": [len(c) for _, c in imports]}))

# %% [markdown]
# Cases are embedded once, when written (the vectors live in `bank/embeddings.sqlite`, keyed by
# encoder and text hash); a rerun of this notebook on the same folder imports nothing twice.

# %%
encoder = bank_encoder(bank_dir)
bank = CaseBank(bank_dir, encoder=encoder)
if bank.version == 0:
    questions = [c.question for _, cases in imports for c in cases]
    for i in tqdm(range(0, len(questions), 128), desc="embedding cases"):
        encoder.encode(questions[i : i + 128])
    for name, cases in imports:
        if cases:
            v = bank.add(cases)
            print(f"version {v}: added {len(cases)} cases from {name}")
else:
    print(f"{bank_dir} already holds version {bank.version}; nothing imported (use a new out_dir to rebuild)")
imported_version = bank.version
bank.stats()

# %% [markdown]
# **Look at:** how many cases each source brought, and the share of failed (negative) ones: the
# agent learns from both, as examples and as warnings.

# %%
display(plots.bank_composition(bank.to_polars()))

# %% [markdown]
# ## Browse
# Filter by label and source; the search box ranks cases by cosine similarity to your text.
# Pick a case to see its plan, answer and trajectory.
# **Look at:** type a question into the search box: the nearest cases come first, with their labels.

# %%
retriever = SimilarityRetriever(bank, encoder)
browser = widgets.case_bank_browser(bank, retriever=retriever)
display(browser)

# %% [markdown]
# ## Duplicates
# Exact duplicates (after whitespace and case normalisation) and near duplicates (cosine ≥
# `dedupe_threshold`) with the same label. Removal writes tombstones: older versions keep them.

# %%
groups, after_dedupe = dedupe(bank, encoder, threshold=dedupe_threshold)
removed = sum(len(g.duplicates) for g in groups)
print(
    f"{len(groups)} duplicate groups, {removed} cases removed -> version {after_dedupe}, {len(bank)} live cases"
)
if groups:
    imported = bank.at(imported_version)
    display(
        pl.DataFrame(
            [
                {
                    "kind": g.kind,
                    "similarity": round(g.similarity, 3),
                    "kept": bank.get(g.keep).question,
                    "removed": len(g.duplicates),
                    "example removed": imported.get(g.duplicates[0]).question,
                }
                for g in groups[:15]
            ]
        )
    )

# %% [markdown]
# ## Leakage against the evaluation split
# A case that (nearly) repeats an evaluation task would let memory recall the answer instead of
# learning to solve it. Exact matches always count; near matches at cosine ≥ `leakage_threshold`.

# %%
eval_tasks = load_suite(eval_suite, n=eval_n, seed=eval_seed).tasks()
leaks = leakage_report(bank.cases(), [t.question for t in eval_tasks], encoder, threshold=leakage_threshold)
print(
    f"{len(eval_tasks)} eval tasks from {eval_suite}; {len(leaks.hits)} leaking cases, "
    f"{len(leaks.leaked_eval_tasks)} eval tasks affected"
)
if leaks.hits:
    display(pl.DataFrame([h.model_dump() for h in leaks.hits[:20]]).drop("case_id"))
    if leakage_action == "remove":
        live = [i for i in dict.fromkeys(h.case_id for h in leaks.hits) if i in bank]
        if live:
            print("removed leaking cases -> version", bank.remove(live, reason=f"leakage vs {eval_suite}"))

# %% [markdown]
# ## Save and travel in time
# The log is the truth; a Parquet snapshot makes the next load fast. Every version stays readable.

# %%
bank.snapshot()
history = pl.DataFrame([{"version": v, "live cases": len(bank.at(v))} for v in bank.versions()])
display(history)
display(
    Markdown(
        f"Bank saved at `{bank_dir}` — version **{bank.version}**, {len(bank)} live cases "
        f"({bank.stats()['positive']} positive, {bank.stats()['negative']} negative)."
    )
)

# %%
# Time travel: the bank right after the import, before dedupe and leakage removal.
before = bank.at(imported_version)
gone = [c for c in before.cases() if c.id not in bank]
print(f"version {imported_version}: {len(before)} cases; now: {len(bank)}; removed since: {len(gone)}")
for c in gone[:5]:
    print(" -", c.label, "|", c.question[:100])
