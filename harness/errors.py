"""Errors meant for the user: one line each, saying what, where, and what to do."""

from __future__ import annotations


class HarnessError(Exception):
    """A problem the user can fix. The CLI prints its message and exits 2."""


class ConfigError(HarnessError):
    """One or more problems in a config or suite file, all listed at once."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(self.problems[0])
        else:
            super().__init__(
                f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
            )


class Interrupted(Exception):
    """Ctrl-C: the message says what was saved. The CLI exits 130."""
