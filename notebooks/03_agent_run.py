# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 03 · The agent, one task at a time
#
# The Memento loop on the embedded model: **retrieve** similar past cases → **plan** (JSON) →
# **execute** each step with MCP tools → **judge** → **write** the episode back as a case.
# Every call lands in a `Trace`; the trace viewer below shows retrieved cases and scores, plan
# cycles, executor steps, tool calls with arguments / results / errors, tokens and latency.
#
# Cells use top-level `await` (Jupyter runs on a live event loop). In a script, use `agent.run(task)`.

# %% tags=["parameters"]
out_dir = "data/runs/notebooks"
smoke = False
full = False  # the whole program: four tasks, two plan cycles of three steps, the coding task (overrides the sizes below)
model = "qwen2.5-coder-1.5b"  # packaged model name or GGUF path (unset: MEMENTO_LOCAL_MODEL); endpoints win
suite = "reasoning-gym:spell_backward"  # the tasks: reasoning-gym:FAM1,FAM2 | humaneval[:0-20] | deepresearcher | jsonl:FILE | jsonl+llm:FILE | table:FILE?OPTIONS | bfcl:base | control:positive | control:negative | your own (memento-lab list suites)
n_tasks = 3  # suite tasks run through the loop, one after another (the bank grows)
max_cycles = 1  # planner turns that may produce a plan (then a forced answer)
max_steps = 2  # plan steps executed per cycle
memory = "similarity"  # the memory method: none | random | similarity | parametric (Memento's case bank; parametric: the learned Q) | expel | awm | awm-rule | ... (memento-lab list memories)
k = 4  # cases shown per episode: the top K (unless k_positive / k_negative are set)
tools = "code,math"  # MCP tool servers of the executor, comma-separated ('' for none)
question = "How many times does the letter 'r' appear in the word 'strawberry'?"
coding_task = -1  # a HumanEval problem (0-163) solved through the tool loop below; -1 to skip
cassette = ""  # record / replay of model and tool calls: off | record | replay | auto (MEMENTO_CASSETTE sets the default); empty: MEMENTO_CASSETTE, else auto
seed = 0  # seed of the task sample, random retrieval and online updates (a replication)

# %%
from contextlib import AsyncExitStack
from pathlib import Path

import polars as pl
from IPython.display import HTML, display
from tqdm.auto import tqdm

from memento_lab import load_suite, open_memory, open_session
from memento_lab.agent.loop import AgentConfig
from memento_lab.config import default_cassette_mode
from memento_lab.trace import read_traces, write_traces
from memento_lab.views.widgets import trace_html, trace_viewer, traces_browser

if full:  # the whole program: more tasks, longer episodes, one coding task
    n_tasks, max_cycles, max_steps, coding_task = 4, 2, 3, 0
if smoke:  # CI: the small model, two tasks, one plan cycle
    model, n_tasks, max_cycles, max_steps = "qwen2.5-coder-0.5b", min(n_tasks, 2), 1, 2
cassette = cassette or default_cassette_mode("auto")
print(
    f"{n_tasks} {suite} tasks, {max_cycles} plan cycle(s) of up to {max_steps} steps, tools {tools or 'none'}, "
    + (f"coding task humaneval:{coding_task}" if coding_task >= 0 else "no coding task (coding_task=-1)")
)
run = Path(out_dir) / "agent"
run.mkdir(parents=True, exist_ok=True)
tool_list = [t for t in tools.split(",") if t]
checkpoint = Path(out_dir) / "checkpoints" / "retriever" / "best.ckpt"  # written by notebook 02
if memory == "parametric" and not checkpoint.exists():
    print(f"no retriever checkpoint at {checkpoint}: using similarity retrieval")
    memory = "similarity"

# %% [markdown]
# ## Start the model and the tool servers
# The embedded llama.cpp server starts on a free loopback port; the MCP servers start as
# subprocesses over stdio. With `cassette="auto"`, every model and tool call is recorded in
# `cassette.sqlite`, so this notebook re-executes offline and identically from the cassette.

# %%
stack = AsyncExitStack()
session = await stack.enter_async_context(open_session(run, tools=tool_list, cassette=cassette, model=model))
print(session.llms.describe())
print(dict(session.tools.tool_names()) if session.tools else {})

# %% [markdown]
# ## The memory: a case bank and a retriever

# %%
retriever_options = dict(checkpoint=str(checkpoint) if memory == "parametric" else None, seed=seed)
mem = open_memory(run / "bank", memory, pairs=run / "pairs.jsonl", k=k, **retriever_options)
bank = mem.bank
the_suite = load_suite(suite, n=n_tasks, seed=seed)
config = AgentConfig(max_cycles=max_cycles, max_steps=max_steps)
agent = session.agent(memory=mem, suite=the_suite, config=config, run_id="notebook-03")
print(f"bank: {len(bank)} cases (version {bank.version}); memory: {memory}, k={k}")

# %% [markdown]
# ## One ad-hoc question (nothing judged, nothing written)
# **Look at:** the plan the planner wrote, then each executor step with its tool calls (arguments,
# results, errors), and the tokens and seconds of every model call.

# %%
trace = await agent.arun(question, learn=False)
display(trace_viewer(trace))

# %% [markdown]
# ## A handful of suite tasks: the memory grows as the agent works
# Each episode is judged by the suite's own scorer and written to the bank; later tasks of the
# same family retrieve the earlier ones (positive cases as examples, negative ones as warnings).
# **Look at:** pick the last task in the browser: its retrieved cases are the earlier tasks'
# episodes, with the rewards they got — the memory read back.

# %%
version_before = bank.version
traces = []
for task in tqdm(the_suite.tasks(), desc="episodes"):
    traces.append(await agent.arun(task))
write_traces(run / "traces.jsonl", traces)
display(traces_browser(traces))

# %%
pl.DataFrame(
    [
        {
            "task": t.task_id,
            "answer": t.final_answer,
            "expected": t.expected,
            "reward": t.reward,
            "retrieved": len(t.retrieved),
            "tool calls": len(t.tool_calls),
            "tokens": t.usage.total_tokens,
            "latency s": round(t.latency_s, 1),
        }
        for t in traces
    ]
)

# %% [markdown]
# ## One coding task through the tool loop
# A HumanEval problem asks for a *program* (`task.answer_kind == "program"`), and the loop follows
# it: the executor writes the whole function and runs it with the `run_python` tool, the task's
# docstring examples are run on it (a second `run_python` call in the step), failures go back to
# the executor to fix, and the program that passes becomes the final answer, which the suite's
# unit tests judge in the sandbox. (With the small smoke model the episode may fail; the view is
# the same.) Part of the whole program (`full=True`) or `coding_task=0`: about a minute more.
# **Look at:** the `run_python` calls: the function, its doctest run, and the fix after a failure.

# %%
if coding_task < 0:
    print("no coding task in this run (coding_task=-1; coding_task=0 or full=True runs one)")
else:
    code_suite = load_suite(f"humaneval:{coding_task}-{coding_task + 1}")
    code_task = code_suite.tasks()[0]
    code_agent = session.agent(suite=code_suite, config=config, run_id="notebook-03-code")
    code_trace = await code_agent.arun(code_task, learn=False)
    print(
        f"{code_task.id} ({code_task.answer_kind}, entry point {code_task.entry_point}): reward {code_trace.reward}, "
        f"{len(code_trace.tool_calls)} tool calls, {code_trace.usage.prompt_tokens} prompt tokens, "
        f"{code_trace.latency_s:.0f} s"
    )
    display(trace_viewer(code_trace))

# %% [markdown]
# ## Replay
# A saved trace is data: read it back and view it (here as static HTML, which needs no widget
# JavaScript and so also shows in an exported HTML file offline). And because every call went through the
# cassette, the first episode re-executes from it exactly, with the bank as it was then
# (`bank.at(version)` — time travel), without the model or the tool servers.
# **Look at:** the last task's trace as a page, then `identical: True` and no model server started.

# %%
saved = list(read_traces(run / "traces.jsonl"))
print(f"{len(saved)} traces in {run / 'traces.jsonl'}")
display(HTML(trace_html(saved[-1])))

# %%
await stack.aclose()  # stop the model and the tool servers

if cassette in ("record", "auto"):
    async with open_session(run, tools=tool_list, cassette="replay", model=model) as replay:
        past = open_memory(
            run / "bank", memory, k=k, version=version_before, **retriever_options
        )  # time travel
        again = await replay.agent(memory=past, suite=the_suite, config=config, run_id="notebook-03").arun(
            the_suite.tasks()[0], learn=False
        )
    print(
        f"live answer: {traces[0].final_answer!r}  replayed: {again.final_answer!r}  identical: {again.final_answer == traces[0].final_answer}"
    )
    print(
        f"replayed model calls: {sum(c.replayed for c in again.llm_calls)}/{len(again.llm_calls)}, started a model server: {replay.llms.local is not None}"
    )
