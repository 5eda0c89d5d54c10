"""User-facing errors: raised at the boundary, printed by the CLI as one line, exit code 2."""


class UserError(Exception):
    """A problem with what the user asked for; the message says what is wrong and how to fix it."""


def did_you_mean(word: str, choices) -> str:
    """A short hint listing valid choices, closest first when one is near."""
    import difflib

    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{hint} Valid: {', '.join(choices)}."
