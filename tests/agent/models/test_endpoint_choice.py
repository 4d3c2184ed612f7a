"""A stray OPENAI_API_KEY never switches the workbench to the paid public API; an endpoint without
model names is an error unless it serves exactly one; a run records its endpoint and models."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from loopback import FakeOpenAI, completion

from memento_lab.agent.models.cassette import Cassette
from memento_lab.agent.models.llm import open_llms
from memento_lab.config import Settings

ROLE_VARS = ("MEMENTO_PLANNER_MODEL", "MEMENTO_EXECUTOR_MODEL", "MEMENTO_JUDGE_MODEL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", *ROLE_VARS):
        monkeypatch.delenv(var, raising=False)


def test_which_settings_choose_an_endpoint() -> None:
    assert not Settings().uses_endpoint
    key_only = Settings(openai_api_key="sk-stray")
    assert not key_only.uses_endpoint and key_only.ignored_api_key
    assert Settings(openai_api_key="sk", judge_model="gpt-4.1-mini").uses_endpoint
    assert Settings(openai_base_url="http://127.0.0.1:1/v1").uses_endpoint


@pytest.mark.anyio
async def test_a_stray_key_keeps_the_embedded_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stray")
    tape = tmp_path / "c.sqlite"
    Cassette(tape, "record")  # an empty tape: replay starts no model server and sends nothing
    with caplog.at_level(logging.WARNING, logger="memento_lab.agent.models.llm"):
        async with open_llms(
            Settings(), local_model="qwen2.5-coder-0.5b", cassette=Cassette(tape, "replay")
        ) as llms:
            choice = llms.describe()
    assert choice["endpoint"] == "embedded:qwen2.5-coder-0.5b"
    assert {choice["planner"], choice["executor"], choice["judge"]} == {"qwen2.5-coder-0.5b"}
    assert "OPENAI_API_KEY is set" in caplog.text and "MEMENTO_PLANNER_MODEL" in caplog.text


@pytest.mark.anyio
async def test_key_and_a_model_name_choose_the_public_api_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-explicit")
    monkeypatch.setenv("MEMENTO_EXECUTOR_MODEL", "gpt-4.1")
    async with open_llms(Settings()) as llms:  # names given: nothing is listed, no request is sent
        choice = llms.describe()
    assert (choice["endpoint"], choice["planner"], choice["executor"], choice["judge"]) == (
        "https://api.openai.com/v1",
        "gpt-4.1",
        "gpt-4.1",
        "gpt-4.1",
    )


@pytest.mark.anyio
async def test_an_endpoint_serving_many_models_needs_names() -> None:
    with FakeOpenAI(lambda req: (200, completion("x"), {}), models=("gpt-a", "gpt-b", "gpt-c")) as fake:
        with pytest.raises(RuntimeError) as err:
            async with open_llms(Settings(openai_base_url=fake.base_url, openai_api_key="sk")):
                pass
        assert not fake.requests  # no chat request was ever sent
    message = str(err.value)
    assert fake.base_url in message and "gpt-a, gpt-b, gpt-c" in message
    assert all(var in message for var in ROLE_VARS)

    with (
        FakeOpenAI(lambda req: (200, completion("x"), {}), models=()) as fake,
        pytest.raises(RuntimeError, match="serves no models.*MEMENTO_PLANNER_MODEL"),
    ):
        async with open_llms(Settings(openai_base_url=fake.base_url)):
            pass

    with FakeOpenAI(lambda req: (200, completion("x"), {}), models=("only-one",)) as fake:
        async with open_llms(Settings(openai_base_url=fake.base_url)) as llms:
            assert llms.judge.model == "only-one"  # a one-model server is unambiguous


@pytest.mark.anyio
async def test_a_run_records_endpoint_and_models(tmp_path: Path) -> None:
    from memento_lab.experiments.run import ExperimentConfig, run_experiment

    reply = completion('{"plan": [], "final_answer": "7"}')
    with FakeOpenAI(lambda req: (200, reply, {}), models=("a", "b")) as fake:
        settings = Settings(
            openai_base_url=fake.base_url,
            planner_model="plan-m",
            executor_model="exec-m",
            judge_model="judge-m",
        )
        cfg = ExperimentConfig(
            suite="reasoning-gym:chain_sum",
            n=1,
            iterations=1,
            memory="none",
            tools=[],
            cassette="off",
            out=str(tmp_path / "run"),
        )
        await run_experiment(cfg, settings=settings, progress=False)
        assert {r["model"] for r in fake.requests} == {"plan-m"}  # the planner answered at once
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["llms"]
    assert (recorded["endpoint"], recorded["planner"], recorded["executor"], recorded["judge"]) == (
        fake.base_url,
        "plan-m",
        "exec-m",
        "judge-m",
    )
