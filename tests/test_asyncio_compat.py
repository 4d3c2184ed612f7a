"""Synchronous wrappers inside a running event loop: a plain coroutine and a papermill-executed cell.

The agent talks to a loopback OpenAI endpoint (the test double for a remote service). The in-loop
call runs in a child interpreter so that nest_asyncio2's patch of asyncio never leaks into this
pytest process (it is applied only when a loop is already running, as in Jupyter).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from loopback import FakeOpenAI, completion

from memento_lab.config import PROJECT_ROOT

PLAN_WITH_ANSWER = '{"plan": [], "final_answer": "forty-two"}'

SYNC_IN_LOOP = """
import asyncio, sys
from memento_lab.agent.models.llm import open_llms
from memento_lab.agent.loop import Agent
from memento_lab.asyncio_compat import run_sync
from memento_lab.config import Settings
from memento_lab.experiments.config import ExperimentConfig
from memento_lab.experiments.run import run_experiment_sync

URL = sys.argv[1]

async def main():
    settings = Settings(openai_base_url=URL, openai_api_key="sk-test", planner_model="m",
                        executor_model="m", judge_model="m", llm_max_retries=0)
    async with open_llms(settings) as llms:
        asyncio.get_running_loop()  # we are inside a running loop here
        trace = Agent(llms).run("What is six times seven?")
        nested = run_sync(asyncio.sleep(0, result="inner"))
    config = ExperimentConfig(suite="reasoning-gym:chain_sum", n=1, iterations=1, memory="none", tools=[],
                              cassette="off", out=sys.argv[2])
    result = run_experiment_sync(config, settings=settings, progress=False)  # a whole run, still in the loop
    return trace.final_answer, nested, result.rows

print(asyncio.run(main()))
"""


def _answering_endpoint() -> FakeOpenAI:
    return FakeOpenAI(lambda req: (200, completion(PLAN_WITH_ANSWER), {}))


def test_run_sync_outside_a_loop_is_asyncio_run() -> None:
    import asyncio

    from memento_lab.asyncio_compat import run_sync

    async def current() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    first, second = run_sync(current()), run_sync(current())
    assert first is not second and first.is_closed()  # a fresh loop each time, closed after: asyncio.run


def test_agent_run_inside_a_running_loop(tmp_path: Path) -> None:
    with _answering_endpoint() as fake:
        proc = subprocess.run(
            [sys.executable, "-c", SYNC_IN_LOOP, fake.base_url, str(tmp_path / "run")],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip().splitlines()[-1] == "('forty-two', 'inner', 1)"
        # the model's direct answer, then the planner keeping it at once: in the episode and in the run
        assert len(fake.requests) == 4


@pytest.mark.slow
def test_agent_run_in_a_papermill_cell(tmp_path: Path) -> None:
    import nbformat
    import papermill

    cells = [
        nbformat.v4.new_code_cell("url = ''", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            textwrap.dedent(
                """
                from memento_lab.agent.models.llm import open_llms
                from memento_lab.agent.loop import Agent
                from memento_lab.config import Settings

                settings = Settings(openai_base_url=url, openai_api_key="sk-test", planner_model="m",
                                    executor_model="m", judge_model="m", llm_max_retries=0)
                opened = open_llms(settings)
                llms = await opened.__aenter__()
                """
            )
        ),
        # the cell a teaching notebook writes: no await, no event-loop knowledge
        nbformat.v4.new_code_cell(
            'trace = Agent(llms).run("What is six times seven?")\nprint(trace.final_answer)'
        ),
        nbformat.v4.new_code_cell("await opened.__aexit__(None, None, None)"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, out = tmp_path / "sync.ipynb", tmp_path / "sync.out.ipynb"
    nbformat.write(nb, src)
    with _answering_endpoint() as fake:
        papermill.execute_notebook(
            str(src),
            str(out),
            parameters={"url": fake.base_url},
            kernel_name="python3",
            cwd=str(PROJECT_ROOT),
        )
    executed = nbformat.read(out, as_version=4)
    run_cell = next(c for c in executed.cells if "Agent(llms).run" in c.source)
    printed = "".join(o.get("text", "") for o in run_cell.outputs if o.output_type == "stream")
    assert printed.strip() == "forty-two", json.dumps(run_cell.outputs)[:2000]
