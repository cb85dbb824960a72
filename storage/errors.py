"""Errors the stores raise; the service maps them to problem+json in one place."""


class StoreError(Exception):
    """Base of every store error."""


class NotFound(StoreError):
    """The resource does not exist, or belongs to another tenant (indistinguishable on purpose)."""


class Conflict(StoreError):
    """The resource exists but is in a state that forbids the operation."""
