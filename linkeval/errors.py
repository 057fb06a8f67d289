"""Errors a user can fix. The CLI prints them as one line and exits 2 (docs/design.md, 'CLI')."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LinkevalError(Exception):
    """A config or input problem: the message names where, what is wrong and how to fix it."""

    exit_code = 2


class SitesFailed(LinkevalError):
    """Every site failed: one line per site (``failed``: site -> message)."""

    def __init__(self, failed: dict[str, str]) -> None:
        super().__init__(" | ".join(f"site {code}: {msg}" for code, msg in failed.items()))
        self.failed = failed


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean "x"?)' for the closest choice, or '' when nothing is close."""
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if not close and len(str(word)) >= 3:  # a truncated name: "lonely" -> "lonely_threshold"
        close = [c for c in choices if c.startswith(str(word))][:1]
    return f' (did you mean "{close[0]}"?)' if close else ""
