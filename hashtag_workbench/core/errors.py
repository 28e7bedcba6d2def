"""The one error type for a mistake in the user's input (a path, a word, an option, a photo).

Every layer raises it, or a subclass naming the area, with a message that says what to fix. The
CLI prints it as one line and exits with status 2; any other exception is a bug and keeps its
traceback. It subclasses ValueError, so callers that catch ValueError still work.
"""
from __future__ import annotations


class InputError(ValueError):
    """The input cannot be used as given; the message says what to change."""
