"""Safe arithmetic: the expression is parsed with ``ast`` and walked over an allow-list."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from langchain_core.tools import tool

MAX_EXPRESSION_CHARS = 500
# Caps that keep one request from pinning a CPU or building a huge integer.
_MAX_RESULT_BITS = 10_000
_MAX_FACTORIAL = 500

Number = int | float


def _pow(base: Number, exp: Number) -> Number:
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
        if exp * math.log2(abs(base)) > _MAX_RESULT_BITS:
            raise ValueError("result too large")
    return operator.pow(base, exp)


def _factorial(n: Number) -> int:
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if not isinstance(n, int) or n < 0:
        raise ValueError("factorial needs a whole number >= 0")
    if n > _MAX_FACTORIAL:
        raise ValueError(f"factorial is limited to {_MAX_FACTORIAL}")
    return math.factorial(n)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Number]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "log": _log,
    "ln": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "floor": math.floor,
    "ceil": math.ceil,
    "factorial": _factorial,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _normalise(expression: str) -> str:
    # People write ^ for powers and use typographic operators; Python's ^ is xor.
    return (
        expression.replace("^", "**").replace("×", "*").replace("÷", "/").replace("−", "-").replace("·", "*")
    )


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_eval(node.left), _eval(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise ValueError(f"unknown name {node.id!r}")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        func = FUNCTIONS.get(node.func.id)
        if func is None:
            raise ValueError(f"unknown function {node.func.id!r}")
        return func(*(_eval(arg) for arg in node.args))
    raise ValueError(
        f"unsupported syntax: {ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__}"
    )


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression without ``eval``.

    Args:
        expression: numbers, ``+ - * / // % ** ^``, parentheses, the constants
            ``pi e tau`` and the functions in :data:`FUNCTIONS`.

    Returns:
        The value, an ``int`` when the arithmetic stayed whole.

    Raises:
        ValueError: on syntax outside the allow-list, division by zero, a math
            domain error or a result that is too large or not finite.
    """
    text = _normalise(expression).strip()
    if not text:
        raise ValueError("empty expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"cannot parse {expression!r}: {exc.msg}") from exc
    try:
        value = _eval(tree)
    except ZeroDivisionError as exc:
        raise ValueError("division by zero") from exc
    except OverflowError as exc:
        raise ValueError("result too large") from exc
    except TypeError as exc:
        raise ValueError(f"wrong arguments: {exc}") from exc
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("result is not a finite number")
    if isinstance(value, int) and value.bit_length() > _MAX_RESULT_BITS:
        raise ValueError("result too large")
    return value


def format_number(value: Number, digits: int = 12) -> str:
    """Show ``value`` the way a person writes it: no ``.0``, no float noise.

    Args:
        value: the number.
        digits: significant digits kept for non-whole floats.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.{digits}g}"
    if "e" in text:
        mantissa, exp = text.split("e")
        mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
        return f"{mantissa}e{int(exp)}"
    return text


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "17 * 23" or "sqrt(2) ^ 2 + 10 % 3".

    Supports + - * / // % ** (or ^), parentheses, pi, e, tau and the functions sqrt, abs,
    round, min, max, log, ln, log10, log2, exp, sin, cos, tan, asin, acos, atan, floor,
    ceil and factorial.
    """
    return format_number(evaluate(expression))
