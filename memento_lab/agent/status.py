"""How an episode ended: ``ok`` (an outcome of the model) or the kind of infrastructure failure.

Endpoint and tool failures of the agent do not raise (the clients record them in
``LLMCall.error_kind`` and ``ToolCall.server_failed``), so they are read from the trace once the
episode ends; anything that raises (a cassette miss, a ``JudgeError``) is mapped by its type. See
``memento_lab.trace.EpisodeStatus``.
"""

from __future__ import annotations

from memento_lab.agent.models.cassette import CassetteMiss
from memento_lab.memory.methods.base import MaintenanceError
from memento_lab.trace import EpisodeStatus, JudgeError, Trace


def status_of_exception(exc: BaseException) -> EpisodeStatus:
    """The status an exception raised inside an episode stands for."""
    import openai

    if isinstance(exc, CassetteMiss):
        return "cassette_miss"
    if isinstance(exc, JudgeError):
        return "judge_error"
    if isinstance(exc, MaintenanceError):
        return "memory_error"
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIError):
        return "endpoint_error"
    return "agent_error"


def status_of_trace(trace: Trace) -> tuple[EpisodeStatus, str | None]:
    """The first infrastructure failure recorded in a finished trace (status, its error), else ``ok``."""
    agent_calls = [c.llm for c in trace.cycles if c.llm is not None] + [
        call for s in trace.steps for call in s.llm_calls
    ]
    for call in agent_calls:
        if call.error_kind in ("endpoint_error", "timeout"):
            return call.error_kind, call.error
    for tool in trace.tool_calls:
        if tool.server_failed:
            return "tool_server_error", tool.error
    # judge calls are not read here: a judge retries and audits, and a failed call whose retry gave a
    # verdict (or an audit that failed) is no failure of the episode; the deciding judge raises
    # ``JudgeError`` when it reaches no verdict
    return "ok", None


def settle(trace: Trace, exc: BaseException | None = None, *, judging: bool = False) -> Trace:
    """Set ``trace.status`` (and ``trace.error`` when it is unset) from an exception or the trace.
    ``judging``: the exception came from the judges (a judge error unless it is a cassette miss)."""
    error: str | None
    if exc is not None:
        status = status_of_exception(exc)
        if judging and status != "cassette_miss":
            status = "judge_error"
        error = f"{'judge: ' if judging else ''}{type(exc).__name__}: {exc}"
    else:
        status, error = status_of_trace(trace)
    if trace.status == "ok":
        trace.status = status
    if error and not trace.error:
        trace.error = error
    return trace
