"""The two programs of the unit-test judge, each in a sandbox of its own (this file's source + one call).

- ``serve(program, entry_point)``, the candidate's process: runs the program, says whether it
  defines the entry point, then answers each call read from stdin (one JSON line) with the entry
  point's result, as plain data, on stdout.
- ``check(prompt, tests, entry_point, calls_fd)``, the checker's process: runs the task's prompt
  (its helper functions: the tests use these, never the candidate's) and the tests, then
  ``check(candidate)`` where ``candidate`` sends every call over ``calls_fd`` and returns the
  answer decoded from JSON. It writes one line ``{"passed": ..., "detail": ...}`` on stdout, only
  when ``check`` has returned or raised; the judge reads the verdict from this process alone.

Only JSON crosses between the two, so the candidate cannot read the tests (they are not in its
sandbox), find the checker's objects through ``gc`` or its stack frames, patch the modules the
tests use, or hand them an object with a lying ``__eq__``. Values: None, bool, int, float, str and
lists are JSON; tuple, set, frozenset, dict, bytes and complex are one-key objects (``{"t": [...]}``).

Standalone on purpose (only the standard library; nothing from memento_lab).
"""

import json
import os
import sys
from typing import Any

MAX_DEPTH = 100
MAX_LINE = 64 * 2**20  # one message; a longer one is refused, not read into memory
SEQUENCES: dict[str, Any] = {"t": tuple, "s": set, "fs": frozenset}


def encode(x: Any, depth: int = 0) -> Any:
    """``x`` as JSON-ready plain data (in the candidate's process: lenient, e.g. numpy scalars and arrays)."""
    if depth > MAX_DEPTH:
        raise TypeError("the value is nested too deeply")
    t = type(x)
    if x is None or t is bool or t is str or t is float:
        return x
    scalars: tuple[tuple[type, Any], ...] = ((int, int.__int__), (float, float.__float__), (str, str.__str__))
    for base, convert in scalars:  # a subclass gives up its methods (a lying __eq__): its value stays
        if isinstance(x, base):
            return convert(x)
    if isinstance(x, list):
        return [encode(v, depth + 1) for v in list.__iter__(x)]
    for tag, kind in SEQUENCES.items():
        if isinstance(x, kind):
            return {tag: [encode(v, depth + 1) for v in kind.__iter__(x)]}
    if isinstance(x, dict):
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(x)]}
    if isinstance(x, bytes | bytearray):
        return {"b": bytes(x).hex()}
    if isinstance(x, complex):
        return {"c": [complex.__complex__(x).real, complex.__complex__(x).imag]}
    if callable(getattr(x, "tolist", None)):  # numpy arrays and scalars
        return encode(x.tolist(), depth + 1)
    if hasattr(type(x), "__index__"):
        return int(x.__index__())
    raise TypeError(f"{t.__qualname__} is not plain data (numbers, strings, containers)")


def decode(v: Any, depth: int = 0) -> Any:
    """Plain builtin data from what ``encode`` wrote; anything else raises ``ValueError`` (strict)."""
    if depth > MAX_DEPTH:
        raise ValueError("the value is nested too deeply")
    if v is None or type(v) in (bool, int, float, str):
        return v
    if type(v) is list:
        return [decode(x, depth + 1) for x in v]
    if type(v) is dict and len(v) == 1:
        ((tag, inner),) = v.items()
        if tag in SEQUENCES and type(inner) is list:
            return SEQUENCES[tag](decode(x, depth + 1) for x in inner)
        if tag == "d" and type(inner) is list and all(type(p) is list and len(p) == 2 for p in inner):
            return {decode(k, depth + 1): decode(x, depth + 1) for k, x in inner}
        if tag == "b" and type(inner) is str:
            return bytes.fromhex(inner)
        if tag == "c" and type(inner) is list and len(inner) == 2:
            return complex(*(float(x) for x in inner))
    raise ValueError(f"not a value the judge exchanges: {str(v)[:80]}")


def why(e: BaseException) -> str:
    try:
        msg = str(e)
    except Exception:
        msg = ""
    return type(e).__name__ + (": " + msg if msg else "")


def send(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def serve(program: str, entry_point: str) -> None:
    """The candidate's process: the program's prints go to stderr, stdout carries only answers."""
    answers = os.dup(1)
    os.dup2(2, 1)
    sys.set_int_max_str_digits(0)  # an exact answer may be a big number
    scope: dict[str, Any] = {"__name__": "__candidate__"}
    try:
        exec(compile(program, "<program>", "exec"), scope)
        function = scope[entry_point]
        if not callable(function):
            raise TypeError(f"{entry_point} is not a function")
    except BaseException as e:
        send(answers, {"failed": "the program raised at import: " + why(e)})
        raise
    send(answers, {"ready": True})
    for line in sys.stdin.buffer:
        call = json.loads(line)
        try:
            value = function(*decode(call["args"]), **decode(call["kwargs"]))
            reply: dict[str, Any] = {"value": encode(value)}
        except Exception as e:
            reply = {"raised": why(e)}
        send(answers, reply)


class CandidateGone(BaseException):
    """The candidate's process broke the exchange (ended, or sent something else than an answer).
    A ``BaseException``, so tests that catch ``Exception`` cannot swallow it."""


def check(prompt: str | None, tests: str, entry_point: str, calls_fd: int) -> None:
    """The checker's process: the tests run here with the prompt's helpers; the candidate is a proxy."""
    report_fd = os.dup(1)
    os.dup2(2, 1)  # the tests' prints go to stderr; stdout carries only the verdict
    answers = sys.stdin.buffer
    sys.set_int_max_str_digits(0)
    calls, broken = [0], [""]

    def report(passed: bool, detail: str) -> None:
        send(report_fd, {"passed": passed, "detail": detail.replace("\n", " ")[:500]})
        os._exit(0)

    def receive() -> dict[str, Any]:
        line = answers.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            raise CandidateGone(
                "the candidate's process ended" if not line else "the candidate sent too much"
            )
        message = json.loads(line)
        if type(message) is not dict or len(message) != 1:
            raise CandidateGone("the candidate sent something else than an answer")
        return message

    def candidate(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        try:
            send(
                calls_fd,
                {"args": encode(list(args)), "kwargs": {"d": [[k, encode(v)] for k, v in kwargs.items()]}},
            )
            reply = receive()
            if "raised" not in reply:
                return decode(reply["value"])
        except (OSError, ValueError, KeyError) as e:
            broken[0] = broken[0] or f"the exchange with the candidate broke: {why(e)}"
            raise CandidateGone(broken[0]) from None
        except CandidateGone as e:
            broken[0] = broken[0] or str(e)
            raise
        raise RuntimeError(f"the candidate raised {reply['raised']}")

    try:
        hello = receive()
    except (CandidateGone, ValueError) as e:
        report(False, f"the candidate never started: {why(e)}")
    if "ready" not in hello:
        report(False, str(hello.get("failed", "the candidate never started"))[:300])
    scope: dict[str, Any] = {"__name__": "__checker__"}
    exec(compile(prompt or "", "<prompt>", "exec"), scope)
    scope[entry_point] = candidate
    try:
        exec(compile(tests, "<tests>", "exec"), scope)
        scope["check"](candidate)
    except BaseException as e:
        report(False, (broken[0] or why(e)) + where(e, tests))
    if broken[0]:
        report(False, broken[0])
    if calls[0] == 0:
        report(False, "the tests never called the candidate")
    report(True, f"check() returned after {calls[0]} calls")


def where(e: BaseException, source: str) -> str:
    """`` at tests line N: <the line>`` for the innermost frame of the tests, else ''."""
    tb, lineno = e.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<tests>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    lines = source.splitlines()
    if lineno is not None and 0 < lineno <= len(lines):
        return f" at tests line {lineno}: {lines[lineno - 1].strip()[:200]}"
    return ""
