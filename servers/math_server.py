"""MCP server ``math``: exact arithmetic and algebra with sympy.

    python -m servers.math_server

Expressions are parsed by ``sympy.parsing.sympy_parser.parse_expr`` with a whitelist namespace
(sympy functions and constants only, no builtins, no attribute access), so no Python is executed.
``^`` means power and ``2x`` means ``2*x``.
"""

from __future__ import annotations

import math
import re
from tokenize import TokenError  # parse_expr's error for unbalanced brackets
from typing import Any

import sympy as sp
from mcp.server.mcpserver.exceptions import ToolError
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

from servers import make_server

TRANSFORMS = (*standard_transformations, implicit_multiplication_application, convert_xor)
MAX_LEN = 2000
MAX_BITS = 100_000  # largest exact power: ~30,000 decimal digits
MAX_FACTORIAL = 5_000
ALLOWED = {
    # functions
    "sqrt",
    "cbrt",
    "root",
    "exp",
    "log",
    "ln",
    "sin",
    "cos",
    "tan",
    "cot",
    "sec",
    "csc",
    "asin",
    "acos",
    "atan",
    "atan2",
    "sinh",
    "cosh",
    "tanh",
    "factorial",
    "binomial",
    "gcd",
    "lcm",
    "floor",
    "ceiling",
    "Abs",
    "abs",
    "Min",
    "Max",
    "Rational",
    "Integer",
    "Float",
    "Sum",
    "Product",
    "diff",
    "integrate",
    "limit",
    "expand",
    "factor",
    "simplify",
    "Mod",
    "isprime",
    "prime",
    "factorint",
    "nsimplify",
    "Eq",
    "re",
    "im",
    "conjugate",
    "mod_inverse",
    "totient",
    # constants
    "pi",
    "E",
    "I",
    "oo",
    "zoo",
    "nan",
}
NAMES: dict[str, Any] = {n: getattr(sp, n) for n in ALLOWED if hasattr(sp, n)}
NAMES |= {"ln": sp.log, "abs": sp.Abs, "e": sp.E, "inf": sp.oo, "infinity": sp.oo}
FORBIDDEN = re.compile(r"__|\b(lambda|import|exec|eval|open|getattr|globals|locals)\b|[\[\]{};@`$\\]")


def parse(text: str) -> sp.Expr:
    """A sympy expression from ``text``, or ToolError naming what is wrong."""
    text = text.strip()
    if not text:
        raise ToolError("empty expression")
    if len(text) > MAX_LEN:
        raise ToolError(f"expression is {len(text)} characters; the limit is {MAX_LEN}")
    if m := FORBIDDEN.search(text):
        raise ToolError(f"{m.group(0)!r} is not allowed in a math expression")
    if "." in re.sub(r"\d\.\d|\d\.|\.\d", "", text):
        raise ToolError("'.' is only allowed in decimal numbers (no attribute access)")
    namespace = {"__builtins__": {}, **_sympy_atoms()}
    try:
        # unevaluated first: refuse 9^9^9^9 and friends before sympy starts computing them
        check_size(
            parse_expr(
                text,
                local_dict=dict(NAMES),
                global_dict=dict(namespace),
                transformations=TRANSFORMS,
                evaluate=False,
            )
        )
        expr = parse_expr(
            text,
            local_dict=dict(NAMES),
            global_dict=dict(namespace),
            transformations=TRANSFORMS,
            evaluate=True,
        )
    except TokenError as e:
        raise ToolError(f"cannot parse {text!r}: unbalanced brackets") from e
    except SyntaxError as e:
        raise ToolError(f"cannot parse {text!r}: invalid syntax") from e
    except ToolError:
        raise
    except Exception as e:
        raise ToolError(f"cannot evaluate {text!r}: {e.__class__.__name__}: {e}") from e
    if not isinstance(expr, sp.Basic):
        raise ToolError(f"{text!r} is not a math expression (got {type(expr).__name__})")
    return expr


def check_size(expr: Any) -> None:
    """ToolError when evaluating ``expr`` would build a number with more than ``MAX_BITS`` bits."""
    if not isinstance(expr, sp.Basic):
        return
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Pow) and node.base.is_number and node.exp.is_number:
            try:
                base = abs(complex(sp.N(node.base, 15)))
                exp = abs(complex(sp.N(node.exp, 15)))
                bits = exp * math.log2(base) if base > 1 else 0.0
            except (OverflowError, TypeError, ValueError):
                bits = math.inf
            if bits > MAX_BITS:
                raise ToolError(f"{node} is too large to compute exactly (more than {MAX_BITS} bits)")
        if isinstance(node, sp.factorial | sp.binomial):
            n = node.args[0]
            if n.is_number and n.is_comparable and abs(float(sp.N(n))) > MAX_FACTORIAL:
                raise ToolError(f"{node} is too large to compute exactly (limit {MAX_FACTORIAL}!)")


def _sympy_atoms() -> dict[str, Any]:
    # What parse_expr's generated code refers to: Symbol/Integer/Float/Rational wrappers (+ Function).
    return {
        n: getattr(sp, n) for n in ("Symbol", "Integer", "Float", "Rational", "Function", "Add", "Mul", "Pow")
    }


def show(value: Any) -> str:
    """Exact form, plus a decimal when the exact form is not already a plain number."""
    if isinstance(value, sp.Basic) and value.is_number and not value.free_symbols:
        if isinstance(value, sp.Float):
            return str(value)
        exact = value
        try:
            approx = sp.N(value, 15)
        except Exception:
            return str(exact)
        if isinstance(exact, sp.Integer) or str(approx) == str(exact):
            return str(exact)
        return f"{exact} ≈ {approx}"
    return str(value)


mcp = make_server("math", "Exact arithmetic and algebra (sympy).")


@mcp.tool(
    description=(
        "Evaluate a math expression exactly, e.g. '2^100', '(3/7 + 1/3) * 21', 'sqrt(50)', 'factorial(20)', "
        "'gcd(84, 36)', 'integrate(x^2, x)'. Returns the exact value and a decimal approximation."
    )
)
def calculate(expression: str) -> str:
    expr = parse(expression)
    try:
        value = expr.doit() if hasattr(expr, "doit") else expr
    except Exception as e:
        raise ToolError(f"cannot evaluate {expression!r}: {e.__class__.__name__}: {e}") from e
    if value.has(sp.zoo, sp.nan):
        raise ToolError(f"{expression!r} is undefined (division by zero?)")
    return show(value)


@mcp.tool(
    description=(
        "Solve an equation or a comma-separated system for `variable` (comma-separated for several), "
        "e.g. 'x^2 - 5x + 6 = 0', '2y + 3 = 11' with variable 'y'. Without '=', solves expression = 0."
    )
)
def solve(equation: str, variable: str = "x") -> str:
    names = [v.strip() for v in variable.split(",") if v.strip()]
    if not names or not all(re.fullmatch(r"[A-Za-z_]\w*", n) for n in names):
        raise ToolError(f"variable must be a name like 'x' (or 'x, y'), got {variable!r}")
    symbols = [sp.Symbol(n) for n in names]
    equations = []
    for part in equation.split(","):
        if part.count("=") > 1 or "==" in part:
            raise ToolError(f"use a single '=' in each equation: {part.strip()!r}")
        if "=" in part:
            left, right = part.split("=")
            equations.append(sp.Eq(parse(left), parse(right)))
        else:
            equations.append(sp.Eq(parse(part), 0))
    missing = [s for s in symbols if not any(eq.has(s) for eq in equations)]
    if missing:
        raise ToolError(f"variable {missing[0]} does not appear in {equation!r}")
    try:
        solutions = sp.solve(equations, symbols, dict=True)
    except (NotImplementedError, ValueError, TypeError) as e:
        raise ToolError(f"sympy cannot solve {equation!r}: {e}") from e
    if not solutions:
        return f"No solution for {', '.join(names)}."
    lines = [", ".join(f"{k} = {show(v)}" for k, v in sol.items()) for sol in solutions]
    return "\n".join(lines)


@mcp.tool(description="Simplify an algebraic expression, e.g. '(x^2 - 1)/(x - 1)' -> 'x + 1'.")
def simplify(expression: str) -> str:
    expr = parse(expression)
    try:
        return str(sp.simplify(expr))
    except Exception as e:
        raise ToolError(f"cannot simplify {expression!r}: {e.__class__.__name__}: {e}") from e


if __name__ == "__main__":
    parse("2^10 + sqrt(x)")  # warm sympy's parser up before the first call (~1-3 s)
    mcp.run()
