"""How much the fuzzing does: bounded and seeded in CI, ten times as much with `--fuzz-long`
(set by tests/contract/conftest.py before the test module is imported)."""

from dataclasses import dataclass, field


@dataclass
class FuzzBudget:
    examples: int = 10  # random cases per operation and role (schemathesis' fuzzing phase)
    # The coverage phase (boundary values, every enum, unexpected methods) makes hundreds of
    # cases for a schema like AG-UI's RunAgentInput, most of the time: long runs only.
    coverage: bool = False
    derandomize: bool = True  # the same cases every CI run

    def make_long(self) -> None:
        self.examples *= 10
        self.coverage = True
        self.derandomize = False


@dataclass
class FuzzTally:
    """What the fuzzing did, printed at the end of the run (tests/contract/conftest.py)."""

    operations: set[str] = field(default_factory=set)
    cases: int = 0
    by_status: dict[int, int] = field(default_factory=dict)

    def count(self, operation: str, status: int) -> None:
        self.operations.add(operation)
        self.cases += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1


BUDGET = FuzzBudget()
TALLY = FuzzTally()
