"""The one exception of manifest reading: the table or its options are wrong."""

from __future__ import annotations


class ManifestError(ValueError):
    """The table or its options are wrong (a column that does not exist, a kind that does not fit)."""
