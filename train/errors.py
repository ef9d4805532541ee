"""Errors the user can fix. Subclassing RankgenError lets one CLI handler print them all."""

from rankgen.errors import RankgenError


class TrainError(RankgenError):
    """A bad recipe, override, corpus or checkpoint; the message names it and the fix."""
