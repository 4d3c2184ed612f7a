"""The test harness the unit-test judge runs inside the sandbox (this file's source is the script).

Pass/fail comes from what the tests report, never from the exit code: the harness reads a nonce
from stdin (then closes stdin), runs the program and ``check(candidate)``, and writes
``<nonce> passed|failed <detail>`` on a private copy of stdout only when ``check`` has returned or
raised. A program that ends the process early (``sys.exit`` / ``os._exit`` at import or inside the
candidate, an ``excepthook`` or ``atexit`` trick) leaves no such line, so it fails.

Every value the candidate returns is converted to plain builtin data (int, float, complex, str,
bytes, bool, None, list, tuple, set, frozenset, dict) before the tests see it, so an object whose
``__eq__`` is always true cannot pass an ``assert candidate(x) == y``. The tests run with the
builtins as they were before the program ran. What stays possible: a program written against this
harness that digs the nonce out of the harness's own stack frames; the sandbox bounds the damage.

Standalone on purpose (only the standard library; nothing from memento_lab): the judge sends this
source plus one ``main(...)`` call to the sandbox.
"""

import builtins
import os
import sys
from typing import Any


def main(program: str, tests: str, entry_point: str) -> None:
    nonce = sys.stdin.readline().strip()
    os.close(0)
    # bind everything the harness needs now: the program may replace module attributes later
    write, exit_, dup2, settrace, setprofile = os.write, os._exit, os.dup2, sys.settrace, sys.setprofile
    type_, issubclass_, str_, dict_ = type, issubclass, str, dict
    compile_, exec_, callable_ = compile, exec, callable
    pristine = dict(builtins.__dict__)
    report_fd = os.dup(1)
    dup2(2, 1)  # the program's prints go to stderr; stdout carries only the harness's report

    def report(status: str, detail: Any) -> None:
        text = detail if type_(detail) is str_ else "(unprintable detail)"
        line = str_.join(" ", [nonce, status, str_.replace(text, "\n", " ")[:500]]) + "\n"
        write(report_fd, str_.encode(line))
        exit_(0)

    def why(e: BaseException) -> str:
        name = type_(e).__name__
        try:
            msg = str_(e)
        except BaseException:
            msg = ""
        name = name if type_(name) is str_ else "exception"
        return name + (": " + msg if type_(msg) is str_ and msg else "")

    def where(e: BaseException, source: str) -> str:
        """`` at tests line N: <the line>`` for the innermost frame of the tests, else ''."""
        try:
            tb: Any = e.__traceback__
            lineno: Any = None
            while tb is not None:
                if tb.tb_frame.f_code.co_filename == "<tests>":
                    lineno = tb.tb_lineno
                tb = tb.tb_next
            lines = str_.splitlines(source)
            if type_(lineno) is int and 0 < lineno <= len(lines):
                return f" at tests line {lineno}: {str_.strip(lines[lineno - 1])[:200]}"
        except BaseException:
            pass
        return ""

    scalars: tuple[tuple[Any, Any], ...] = (
        (int, int.__int__),
        (float, float.__float__),
        (complex, complex.__complex__),
        (str, lambda s: str_.join("", [s])),
        (bytes, bytes.__bytes__),
    )
    sequences: tuple[tuple[Any, Any], ...] = (
        (list, list.__iter__),
        (tuple, tuple.__iter__),
        (set, set.__iter__),
        (frozenset, frozenset.__iter__),
    )

    def plain(x: Any, depth: int = 0) -> Any:
        """``x`` as plain builtin data, read through the builtin types' own methods."""
        t = type_(x)
        if x is None or t is bool:
            return x
        if depth > 100:
            raise TypeError("the candidate's result is nested too deeply")
        for base, convert in scalars:
            if issubclass_(t, base):
                return convert(x)
        if issubclass_(t, dict_):
            return {plain(k, depth + 1): plain(v, depth + 1) for k, v in dict_.items(x)}
        for kind, iterate in sequences:
            if issubclass_(t, kind):
                return kind([plain(v, depth + 1) for v in iterate(x)])
        raise TypeError(
            f"the candidate returned a {t.__qualname__!s}, not plain data (numbers, strings, containers)"
        )

    scope: dict = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        exec_(compile_(program, "<program>", "exec"), scope)
    except BaseException as e:
        report("failed", "the program raised at import: " + why(e))
    settrace(None)
    setprofile(None)
    candidate: Any = scope.get(entry_point)
    if not callable_(candidate):
        report("failed", f"the program defines no function {entry_point!s}")
    calls = [0]

    def guarded(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        result = candidate(*args, **kwargs)
        settrace(None)
        setprofile(None)
        return plain(result)

    test_scope = dict_(scope)
    test_scope["__builtins__"] = pristine
    try:
        exec_(compile_(tests, "<tests>", "exec"), test_scope)
        test_scope["check"](guarded)
    except BaseException as e:
        report("failed", why(e) + where(e, tests))
    if calls[0] == 0:
        report("failed", "the tests never called the candidate")
    report("passed", f"check() returned after {calls[0]} calls")
