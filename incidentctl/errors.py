"""Errors the core raises; only the edges (CLI exit code, HTTP status) turn them into messages."""


class IncidentctlError(Exception):
    """Base of the errors a user can act on; `exit_code` is what the CLI exits with."""

    exit_code = 1


class DatabaseUnavailable(IncidentctlError):
    """The database cannot be reached or answered with a connection-level error."""

    exit_code = 3


class DatabaseRefused(IncidentctlError):
    """The database refused changes for a reason of its own (its schema, its settings), not one
    row's values."""

    exit_code = 3


class DatabaseConflict(IncidentctlError):
    """A transaction kept losing to concurrent ones (deadlock, certification, lock wait) past its retries."""


class SchemaNotReady(IncidentctlError):
    """The database schema is missing or older than this version of incidentctl needs."""

    exit_code = 3


class NotFound(IncidentctlError):
    """An id names nothing."""


class InvalidTransition(IncidentctlError):
    """The requested change does not apply to the object's current state."""

    def __init__(self, message: str, status: str | None = None):
        super().__init__(message)
        self.status = status  # the object's status as it is


class ConfigError(IncidentctlError):
    """A setting has a value that cannot be used."""

    exit_code = 2


class UnsupportedDatabase(ConfigError):
    """The database URL names a database or driver incidentctl does not run on."""


class ProcessingBusy(IncidentctlError):
    """Another worker held the applier lease for longer than we waited."""

    def __init__(self, message: str, holder=None):
        super().__init__(message)
        self.holder = holder  # the lease row as read (db.lease.Holder), when known


class LeaseLost(IncidentctlError):
    """This worker's lease was taken over (it expired): the work done under it was rolled back."""


class RebuildRefused(IncidentctlError):
    """Rebuilding would lose incidents whose raw alerts are gone (retention purged them)."""


class InvalidSilence(IncidentctlError):
    """A silence request that cannot be stored as given."""

    exit_code = 2


class ExportFileError(IncidentctlError):
    """The export file cannot be written."""


class SlackNotConfigured(IncidentctlError):
    """No Slack webhook is configured, so nothing can be sent."""


class TokenError(IncidentctlError):
    """An API token request that cannot be done as asked (a bad name, a live token already)."""

    exit_code = 2
