"""Errors that crossed an actor boundary: Ray re-raises them wrapped, with the original as `cause`."""


def sentence_of(exc: BaseException, default: str) -> str:
    """The user-facing sentence of an error, unwrapping Ray's wrapper if there is one."""
    cause = getattr(exc, "cause", None) or exc
    return str(cause.args[0]) if cause.args else default
