"""What the command-line tools share."""

from collections.abc import Callable
from typing import Any


def bar_progress(bar: Any) -> Callable[[int, int], None]:
    """A `progress(done, total)` callback that moves a tqdm bar."""

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return progress
