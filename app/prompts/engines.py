"""Rendering a prompt template's text with its variables.

- `plain` (the default): `{{variable}}` is replaced by the variable's value (a string as it
  is, anything else as JSON) and nothing else happens: no logic, no escaping (a prompt is
  not HTML). Every `{{name}}` must be a declared variable, checked when the version is saved.
- `jinja` (opt-in): Jinja2's `ImmutableSandboxedEnvironment` with `StrictUndefined` (an
  unknown name is an error, never an empty string). The sandbox refuses attribute walks to
  `__class__`, `__globals__` and the like, and `str.format` tricks (the 3.1.5 and 3.1.6 fixes);
  on top of it, every call and every `*`, `**` and `%` is checked here: no integer argument
  beyond MAX_NUMBER (so no `range(10**9)`, no `'x'.center(10**9)`), no power beyond
  MAX_EXPONENT, no sequence repeated past MAX_RENDERED_CHARACTERS, no `%` formatting of text;
  rendering runs in a thread, stops at RENDER_SECONDS (checked at every call and every piece
  of output) and at MAX_RENDERED_CHARACTERS of output. The variables the text uses must be
  declared (`jinja2.meta.find_undeclared_variables`), checked when the version is saved.
"""

import functools
import operator
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import orjson
from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEXT_CHARACTERS = 100_000  # of a version's text
MAX_RENDERED_CHARACTERS = 200_000
RENDER_SECONDS = 1.0
MAX_NUMBER = 10_000  # the largest integer a template may pass to a call
MAX_EXPONENT = 64

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class RenderRefused(Exception):
    """The template cannot be rendered safely, or failed: the message says why."""


def plain_variables(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render_plain(text: str, values: Mapping[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        found = values[match.group(1)]
        return found if isinstance(found, str) else orjson.dumps(found).decode()

    return PLACEHOLDER.sub(value, text)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise RenderRefused(f"The template took longer than {RENDER_SECONDS:g} s to render.")


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False)
        self.deadline: _Deadline | None = None
        # Filters and tests are called directly, not through `call`: each checked the same.
        self.filters = {name: self._guarded(f) for name, f in self.filters.items()}
        tests: dict[str, Any] = self.tests  # typed by Jinja as plain functions
        self.tests = {name: self._guarded(f) for name, f in tests.items()}

    def _guarded(self, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)  # keeps Jinja's pass_context (and like) marks
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self.deadline is not None:
                self.deadline.check()
            for argument in (*args, *kwargs.values()):
                _small(argument)
            return function(*args, **kwargs)

        return guarded

    def call(
        __self,
        __context: Any,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if __self.deadline is not None:
            __self.deadline.check()
        for argument in (*args, *kwargs.values()):
            _small(argument)
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "%":
            if isinstance(left, str):
                raise SecurityError("`%` formatting of text is not allowed: use `~` or filters.")
            return operator.mod(left, right)
        if operator_name == "**":
            if isinstance(right, int) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"An exponent beyond {MAX_EXPONENT} is not allowed.")
            _small(left, limit=10**12)
            return operator.pow(left, right)
        for sequence, count in ((left, right), (right, left)):
            repeated = isinstance(sequence, str | list | tuple) and isinstance(count, int)
            if repeated and len(sequence) * count > MAX_RENDERED_CHARACTERS:
                raise SecurityError("A sequence repeated beyond the output's size.")
        return operator.mul(left, right)


def _small(value: Any, limit: int = MAX_NUMBER) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > limit:
        raise SecurityError(f"A number beyond {limit:,} is not allowed here.")


_ENVIRONMENT = _Environment()


def jinja_variables(text: str) -> set[str]:
    """The names the template reads from its variables; a syntax error is `RenderRefused`."""
    try:
        return set(meta.find_undeclared_variables(_ENVIRONMENT.parse(text))) - set(
            _ENVIRONMENT.globals
        )
    except TemplateError as exc:
        raise RenderRefused(f"The template does not parse: {exc}") from exc


async def render_jinja(text: str, values: Mapping[str, Any]) -> str:
    """Rendered in a worker thread, within RENDER_SECONDS and MAX_RENDERED_CHARACTERS."""
    return await anyio.to_thread.run_sync(_render_jinja, text, dict(values))


def _render_jinja(text: str, values: dict[str, Any]) -> str:
    environment = _Environment()
    environment.deadline = deadline = _Deadline(RENDER_SECONDS)
    pieces: list[str] = []
    size = 0
    try:
        for piece in environment.from_string(text).generate(**values):
            deadline.check()
            size += len(piece)
            if size > MAX_RENDERED_CHARACTERS:
                raise RenderRefused(
                    f"The rendered text is longer than {MAX_RENDERED_CHARACTERS:,} characters."
                )
            pieces.append(piece)
    except SecurityError as exc:
        raise RenderRefused(f"The template did something it may not: {exc}") from exc
    except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        raise RenderRefused(f"The template failed: {exc}") from exc
    return "".join(pieces)
