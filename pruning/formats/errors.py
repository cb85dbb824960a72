"""Errors of the sparse formats: each says what is wrong with which tensor or file."""


class SparseFormatError(ValueError):
    """A tensor cannot be encoded, or a file is not a valid Shears sparse file."""


class ModelMismatch(SparseFormatError):
    """Stored tensors do not fit the model they are written into (name, shape or dtype)."""
