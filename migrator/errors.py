"""Every error the migrator raises on purpose, in one hierarchy.

Lower-level failures (httpx transport errors, bad JSON, CSV parse errors, SQLite errors) are
mapped into these classes at the boundary where they happen: HTTP errors in
``migrator/http.py``, CSV errors in ``migrator/clerk/export.py``. The CLI turns each class into a
one-line message and an exit code; anything else reaching the CLI is a bug.

Exit codes (documented in README and ``migrator run --help``):

* 0 every eligible user is in Kinde
* 1 the run finished, but some users failed
* 2 bad configuration or input; nothing was written
* 3 stopped by the source or the target (credentials, scope, a server answering garbage), or by
  the journal's disk
* 130 interrupted by the operator
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_BAD_INPUT = 2
EXIT_STOPPED = 3
EXIT_INTERRUPTED = 130


class MigratorError(Exception):
    """Base class. ``str(error)`` is a complete message for the operator: what and where; ``hint``,
    when set, what to do next (set where the error is built; a journaled run that stops raises
    ``RunStopped``, whose hint says how to continue it)."""

    exit_code = EXIT_STOPPED
    hint: str | None = None
    stops_run = False  # True: no other user or item would fare better, so the run stops (set per class)


class ConfigError(MigratorError):
    """A missing, empty or invalid setting. Raised before anything is written."""

    exit_code = EXIT_BAD_INPUT


class InputError(MigratorError):
    """Bad input file (the Clerk CSV export). Carries where: file, row, field."""

    exit_code = EXIT_BAD_INPUT


class JournalError(MigratorError):
    """The run journal is missing, belongs to another configuration, or cannot be opened (exit 2);
    or it failed while the run was writing to it (``writing``: a full disk, a locked file; exit 3)."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, writing: bool = False) -> None:
        super().__init__(message)
        if writing:
            self.exit_code = EXIT_STOPPED


class ApiError(MigratorError):
    """An HTTP API answered with an error or could not be reached.

    ``retryable`` tells the retry policy whether trying again can help; ``retry_after`` is the
    server's own hint in seconds (``Retry-After`` or ``RateLimit-Reset``), when it gave one;
    ``ambiguous`` means the request may have been processed although no answer came back (a
    timeout, a dropped connection, a 5xx): a write must then be reconciled by lookup, not re-sent.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous
        self.service = service
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after

    def unsent(self) -> ApiError:
        """This error for a request that was never sent (its token request failed): neither retried nor taken
        for a write that may have happened. A new error, raised ``from`` this one, which stays as raised."""
        unsent = type(self).__new__(type(self), *self.args)
        unsent.__dict__.update(self.__dict__, retryable=False, ambiguous=False)
        return unsent


class RateLimited(ApiError):
    """429: slow down and try again after ``retry_after``."""

    hold: float = 0.0  # seconds this request waits before its retry (the limiter decides; 0: it paces everyone)


class TransientError(ApiError):
    """5xx, a timeout or a dropped connection: worth retrying. A write may have happened."""


class ProtocolError(ApiError):
    """The server answered something that is not the API's shape (not JSON, truncated, wrong type). Stops the run."""

    stops_run = True


class AuthError(ApiError):
    """Credentials were refused (wrong Clerk key, wrong Kinde client id/secret/audience). Stops the run."""

    stops_run = True


class ScopeError(ApiError):
    """Kinde's token lacks a scope the operation needs (403). Stops the run and names the scope."""

    stops_run = True

    def __init__(self, message: str, *, scope: str | None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.scope = scope


class AlreadyExists(ApiError):
    """Kinde refused a create because the email/username/phone is taken (400 or 409, any code)."""


class IdentityRefused(MigratorError):
    """Kinde created the user but not all of its identities (``identities[].result.created: false``).

    A per-user failure: the user is not counted as migrated, and ``retry-failed`` adds the missing
    identities to the same Kinde user."""

    exit_code = EXIT_FAILURES
    code = "IDENTITY_NOT_CREATED"


class NotFound(ApiError):
    """The API said positively that a thing does not exist. ``what`` names it (``user``, ``organization``,
    ``role``, ...) when the error code does (Kinde: ``USER_NOT_FOUND``...); None for a bare 404 of an API
    whose 404 means that (Clerk). Only this error is proof that something is gone: an unknown route or a
    refused request is never taken for it."""

    def __init__(self, message: str, *, what: str | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.what = what


class RunStopped(MigratorError):
    """A journaled run stopped on ``cause`` (its message and exit code); ``hint`` says how to continue it.

    Raised by the run lifecycle (``migrator/runs/lifecycle.py``), the one place that maps a failure to
    the operator's next step, ``from`` the error itself, which is never changed once raised."""

    def __init__(self, cause: MigratorError, hint: str) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.exit_code = cause.exit_code
        self.hint = hint
