"""Which domain errors a function can raise, read from its code, for the OpenAPI document.

A route's errors are those its function, its dependencies and whatever they call inside
`app` raise (`raise AgentNotFound()`), found by reading their source: the `raise`
statements and the calls of functions this package defines, followed through modules
(`service.get_usable_agent(...)`, `repository.x(...)`) and through methods of the same
class (`self._key(...)`). What cannot be followed statically (a method of an object kept on
`app.state`, a middleware in front of a dependency) is declared where it happens with
`@raises(...)`. The reading over-approximates (an error caught by a caller is still
counted); fuzzing checks the other direction, that no status goes undocumented.
"""

import ast
import builtins
import functools
import inspect
import textwrap
from collections.abc import Callable
from typing import Any, TypeVar

from app.core.errors import AppError

F = TypeVar("F", bound=Callable[..., Any])
_DECLARED = "__raises__"
_PACKAGE = "app."


def raises(*errors: type[AppError]) -> Callable[[F], F]:
    """Declare errors this function raises in ways the reading cannot follow."""

    def declare(function: F) -> F:
        setattr(function, _DECLARED, (*getattr(function, _DECLARED, ()), *errors))
        return function

    return declare


def errors_raised_by(function: Callable[..., Any]) -> frozenset[type[AppError]]:
    errors: set[type[AppError]] = set()
    seen: set[Callable[..., Any]] = set()
    pending = [inspect.unwrap(function)]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        raised, callees = _read(current)
        errors |= raised
        pending.extend(callees)
    return frozenset(errors)


@functools.cache
def _read(
    function: Callable[..., Any],
) -> tuple[frozenset[type[AppError]], tuple[Callable[..., Any], ...]]:
    """What the function raises itself, and the functions of ours it calls."""
    errors: set[type[AppError]] = set(getattr(function, _DECLARED, ()))
    callees: list[Callable[..., Any]] = []
    tree = _tree(function)
    if tree is None:
        return frozenset(errors), ()
    owner = _owner_class(function)
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            raised = _resolve(function, owner, _callee(node.exc))
            if isinstance(raised, type) and issubclass(raised, AppError):
                errors.add(raised)
        elif isinstance(node, ast.Call):
            callee = _resolve(function, owner, node.func)
            if _ours(callee):
                callees.append(inspect.unwrap(callee))
    return frozenset(errors), tuple(callees)


def _tree(function: Callable[..., Any]) -> ast.AST | None:
    if not (inspect.isfunction(function) or inspect.ismethod(function)):
        return None
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return None


def _callee(expression: ast.expr) -> ast.expr:
    return expression.func if isinstance(expression, ast.Call) else expression


def _owner_class(function: Callable[..., Any]) -> type | None:
    """The class a method is defined in, from its qualified name (`TokenVerifier.verify`)."""
    parts = function.__qualname__.split(".")
    if len(parts) < 2 or "<locals>" in parts:
        return None
    owner: Any = inspect.getmodule(function)
    for part in parts[:-1]:
        owner = getattr(owner, part, None)
    return owner if isinstance(owner, type) else None


def _resolve(function: Callable[..., Any], owner: type | None, expression: ast.expr) -> Any:
    """What a name or dotted name in the function's body refers to, if it can be known."""
    if isinstance(expression, ast.Name):
        if expression.id in function.__globals__:
            return function.__globals__[expression.id]
        return getattr(builtins, expression.id, None)
    if isinstance(expression, ast.Attribute):
        if isinstance(expression.value, ast.Name) and expression.value.id in ("self", "cls"):
            return getattr(owner, expression.attr, None) if owner else None
        base = _resolve(function, owner, expression.value)
        return getattr(base, expression.attr, None) if base is not None else None
    return None


def _ours(callee: Any) -> bool:
    return (inspect.isfunction(callee) or inspect.ismethod(callee)) and getattr(
        callee, "__module__", ""
    ).startswith(_PACKAGE)
