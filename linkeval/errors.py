"""Errors a user can fix. The CLI prints them as one line and exits 2 (docs/design.md, 'CLI')."""

from __future__ import annotations

import difflib
import re
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


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str, keep_newlines: bool = False) -> str:
    """Text for the terminal: control characters (ANSI escapes) shown as \\xNN, not obeyed.

    >>> printable("label \\x1b[31mred")
    'label \\\\x1b[31mred'
    """
    text = CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
    return text if keep_newlines else text.replace("\n", "\\n")
