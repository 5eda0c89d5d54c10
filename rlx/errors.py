"""User-facing errors: raised at the boundary, printed by the CLI as one line, exit code 2."""

import contextlib
import errno


class UserError(Exception):
    """A problem with what the user asked for; the message says what is wrong and how to fix it."""


def did_you_mean(word: str, choices) -> str:
    """A short hint listing valid choices, closest first when one is near."""
    import difflib

    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{hint} Valid: {', '.join(choices)}."


# A write that failed for lack of room: a full disk, a full quota, or a file-size limit (ulimit -f; what the
# tests use in place of a full disk). rlx.cli.main turns one anywhere in an exception's chain into one line.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def no_space(exc: BaseException | None) -> OSError | None:
    """The OSError of a write that found no room in exc or in its chain of causes (libraries such as orbax
    re-raise it wrapped), else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def writing(path):
    """Name path in an OSError raised inside, when the write that failed did not (a file object's write() never
    does), so that the one-line error says which file found no room."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            e.filename = str(path)
        raise
