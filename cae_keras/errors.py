"""Errors that the command line turns into one clear message instead of a traceback."""


class CaeKerasError(Exception):
    """Base class: something the user can fix (bad data, bad argument, bad run folder)."""


class DataError(CaeKerasError):
    """A dataset folder or file is missing, unreadable or inconsistent. The message names the path."""


class ConfigError(CaeKerasError):
    """A bad argument value or a run folder whose config does not fit the request."""
