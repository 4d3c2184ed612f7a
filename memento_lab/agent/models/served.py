"""Which model an OpenAI-compatible endpoint serves, when the run names none."""

from __future__ import annotations

import json

import openai
from openai import AsyncOpenAI

ROLE_VARIABLES = "MEMENTO_PLANNER_MODEL, MEMENTO_EXECUTOR_MODEL, MEMENTO_JUDGE_MODEL"


async def only_served_model(client: AsyncOpenAI) -> str:
    """The endpoint's model when it serves exactly one (a vLLM/SGLang box); no silent pick among
    several (the public API lists dozens, most of them paid). Any failure names the call."""
    where = f"GET {str(client.base_url).rstrip('/')}/models"
    hint = f"(or name the models: {ROLE_VARIABLES}; one is enough, the others default to it)"
    try:
        ids = [m.id for m in (await client.models.list()).data]
    except openai.APITimeoutError:
        raise RuntimeError(f"{where} timed out after {client.timeout}s {hint}") from None
    except openai.APIStatusError as e:
        raise RuntimeError(f"{where}: HTTP {e.status_code}: {e.message} {hint}") from None
    except openai.APIConnectionError as e:
        raise RuntimeError(f"{where}: cannot reach the endpoint: {e} {hint}") from None
    except (json.JSONDecodeError, openai.APIResponseValidationError, AttributeError, TypeError) as e:
        raise RuntimeError(f"{where}: the reply is not a JSON model list ({e}) {hint}") from None
    if not ids:
        raise RuntimeError(f"{where}: the endpoint serves no models {hint}")
    if len(ids) > 1:
        served = ", ".join(ids[:20]) + (f" … ({len(ids)} in all)" if len(ids) > 20 else "")
        raise RuntimeError(
            f"{where}: no model named and the endpoint serves {len(ids)} ({served}): set {ROLE_VARIABLES}"
        )
    return ids[0]
