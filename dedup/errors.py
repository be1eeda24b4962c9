"""The few exceptions the library raises on purpose.

The CLI catches only :class:`DedupError` (and its subclasses) and prints its message as one line,
``dedup error: <message>``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class DedupError(Exception):
    """Base class: a problem the user can fix. The message names what, where, and the fix."""


class ConfigError(DedupError):
    """An unknown config key or a value outside what the key accepts."""


class InputError(DedupError):
    """Input that cannot be read as asked: bad JSON, missing field, unknown format."""
