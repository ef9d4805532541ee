"""The one exception type users see: the CLI prints its message without a traceback."""


class RankgenError(Exception):
    """A problem the user can fix; the message names the file or value and the fix."""


class BadImage(RankgenError):
    """An input image that cannot be used; generation skips it and reports why."""
