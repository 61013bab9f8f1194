"""User-facing errors.

Every problem a user can fix (a bad file, column, value or config) is raised as a
:class:`DeepQoEError` whose message names the file, column and row where it applies. The CLI prints the
message alone (no traceback) and exits with status 1 (2 is for usage errors; see `deepqoe --help`).
"""

from __future__ import annotations


def one_line(text: object) -> str:
    """``text`` with line breaks and other control characters escaped, so a message stays one line."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in s)


class DeepQoEError(ValueError):
    """A problem with the user's input, described in one clear message (a ValueError, as scikit-learn
    expects of a bad parameter or input)."""

    def __init__(self, message: str, *, file: str | None = None, column: str | None = None,
                 row: int | None = None, field: str | None = None):
        self.file, self.column, self.row, self.field = file, column, row, field
        where = []
        if file is not None:
            where.append(f"file '{one_line(file)}'")
        if field is not None:
            where.append(f"field '{one_line(field)}'")
        if column is not None:
            where.append(f"column '{one_line(column)}'")
        if row is not None:
            where.append(f"row {row}")
        message = one_line(message)
        self.message = message
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class DeepQoENote(UserWarning):
    """Something done to the user's input that they should know of (a stall just after the end of the media
    moved to the end): a one-line message naming the file, field and session, as a :class:`DeepQoEError`
    does. The CLI prints it as a status line (``deepqoe: note: ...``; ``-q`` hides it)."""
