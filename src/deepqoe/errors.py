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
