"""The kinds of answer a task asks for, and what a program answer is: the program inside a coding
answer and the check of a program against the task's visible examples.

    program = extract_program(reply, "add")            # the fenced block defining add(), or None
    script = examples_script(program, task_question)   # program + its docstring examples as doctests
    passed, total = parse_examples_report(tool_output)

Kinds (``AnswerKind``): ``short`` (as few words as possible: reasoning-gym, QA), ``program`` (a
function with an entry point, shown as one fenced block), ``text`` (a few sentences), ``value`` (a
structured value exactly in the format the task asks for). How the agent's prompts ask for each kind
is data (``agent/prompts/answer_kinds.toml``).
"""

from __future__ import annotations

import doctest
import re

from memento_lab.memory.bank.case import AnswerKind
from memento_lab.trace import clip_middle

__all__ = [
    "AnswerKind",
    "clip_middle",
    "defines",
    "examples_script",
    "extract_code",
    "extract_program",
    "parse_examples_report",
    "program_answer",
    "visible_examples",
]

REPORT = "EXAMPLES PASSED {passed}/{total}"
_REPORT_RE = re.compile(r"EXAMPLES PASSED (\d+)/(\d+)")


# --------------------------------------------------------------------------- programs
def extract_code(answer: str, entry_point: str) -> str:
    """The code in an answer: the fenced block defining ``entry_point`` (else the longest), or the raw text."""
    blocks = re.findall(r"```[ \t]*(?:python|py|Python)?[^\n]*\n(.*?)(?:```|\Z)", answer, flags=re.S)
    blocks = [b for b in blocks if b.strip()]
    if not blocks:
        return answer
    defining = [b for b in blocks if defines(b, entry_point)]
    return max(defining or blocks, key=len)


def extract_program(text: str | None, entry_point: str) -> str | None:
    """The code in ``text`` when it defines ``entry_point`` (fenced or bare), else ``None``."""
    if not text:
        return None
    code = extract_code(text, entry_point).strip("\n")
    return code if defines(code, entry_point) else None


def defines(code: str, entry_point: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, flags=re.M) is not None


def program_answer(code: str) -> str:
    """A program as the final answer: one fenced python block (what the judge and memory read)."""
    return f"```python\n{code.strip(chr(10))}\n```"


def visible_examples(question: str) -> list[doctest.Example]:
    """The ``>>>`` examples written in the task (a HumanEval prompt's docstring)."""
    # a fence or a closing docstring quote would be read as part of the expected output before it
    text = re.sub(r"^[ \t]*(?:```.*|\"\"\"|\'\'\')[ \t]*$", "", question, flags=re.M)
    try:
        return doctest.DocTestParser().get_examples(text)
    except ValueError:  # inconsistent indentation inside the docstring: no usable examples
        return []


# Doctest compares printed reprs; the unit tests compare values. Equal values pass here too
# (``np.float64(1.0)`` against ``1.0``; floats within 1e-6), so a right program is not sent to be "fixed".
_VALUE_CHECKER = """
class _ValueChecker(_doctest.OutputChecker):
    def check_output(self, want, got, optionflags):
        if super().check_output(want, got, optionflags):
            return True
        try:
            w, g = eval(want, globals()), eval(got, globals())
            return bool(w == g) or abs(float(w) - float(g)) <= 1e-6
        except Exception:
            return False
"""


def examples_script(code: str, question: str) -> str | None:
    """``code`` followed by a doctest run of the task's visible examples, printing failures and a
    ``EXAMPLES PASSED p/n`` line; ``None`` when the task shows no examples. The code runs under a
    ``try`` so the model's own failing checks after the ``def`` do not hide the examples' verdict."""
    examples = visible_examples(question)
    if not examples:
        return None
    # the imports the task's own stub shows are in scope for the judge (the stub is prepended): here too
    imports = re.findall(r"^(?:from[ \t]+[\w.]+[ \t]+)?import[ \t]+[^\n]+$", question, flags=re.M)
    code = "\n".join([*imports, code])
    text = "".join(f">>> {e.source.rstrip()}\n{e.want}" for e in examples)
    return (
        "import doctest as _doctest\n"
        "import sys as _sys\n"
        "try:\n"
        f"    exec(compile({code!r}, 'solution.py', 'exec'), globals())\n"
        "except BaseException as _e:\n"
        "    print('the code raised while loading:', type(_e).__name__, _e)\n"
        f"_test = _doctest.DocTestParser().get_doctest({text!r}, dict(globals()), 'examples', None, 0)\n"
        f"{_VALUE_CHECKER}"
        "_runner = _doctest.DocTestRunner(_ValueChecker(), optionflags=_doctest.NORMALIZE_WHITESPACE)\n"
        "_result = _runner.run(_test, out=_sys.stdout.write)\n"
        f"print({REPORT!r}.format(passed=_result.attempted - _result.failed, total=_result.attempted))\n"
    )


def parse_examples_report(output: str | None) -> tuple[int, int] | None:
    """``(passed, total)`` from an examples run's output, ``None`` when the run never reported."""
    m = _REPORT_RE.search(output or "")
    return (int(m.group(1)), int(m.group(2))) if m else None
