"""The exceptions of a run, one hierarchy, each translated once at its module boundary.

A refused ticket is not an exception (it is a RowResult); these are for problems that stop the
run or stop it from starting. The CLI turns each into a message and an exit code.
"""

from __future__ import annotations


class BatchUpdateError(Exception):
    """Base of every error this tool raises on purpose. str() is the message for the user."""

    def __init__(self, message: str, tip: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tip = tip

    def __str__(self) -> str:
        return self.message


class InputError(BatchUpdateError):
    """The input file cannot be used (missing, unreadable, no ticket-number column...)."""


class ConfigError(BatchUpdateError):
    """The settings are wrong (bad config key or value, missing server URL...)."""


class AuthError(BatchUpdateError):
    """The server rejected the credentials (token request refused, or 401 twice)."""

    # How many times the request that met the refusal went out (0: no request, a token refused).
    sends: int = 0


class ServerUnreachable(BatchUpdateError):
    """The server could not be reached or did not answer like a CCS server."""


class TlsError(ServerUnreachable):
    """The server's certificate could not be verified."""


class OutputError(BatchUpdateError):
    """A results file cannot be written (exists already, folder missing, no permission...)."""
