"""Where progress and messages go: standard output while interactive logging is on (the default),
Python's `logging` (logger "pynn") once it is switched off, as Keras's io_utils."""

import logging
import sys

_interactive = True


def enable_interactive_logging() -> None:
    """Sends progress bars and messages to standard output (the default), as Keras."""
    global _interactive
    _interactive = True


def disable_interactive_logging() -> None:
    """Sends progress bars and messages to `logging.getLogger("pynn")` instead of standard
    output: a progress bar is then logged once, when it ends.

    Example:
        >>> pynn.utils.disable_interactive_logging()
        >>> model.fit(x, y, epochs=3)   # the epochs' lines go to the "pynn" logger
    """
    global _interactive
    _interactive = False


def is_interactive_logging_enabled() -> bool:
    """True while progress and messages go to standard output (see
    `disable_interactive_logging`)."""
    return _interactive


def print_msg(message, line_break: bool = True) -> None:
    """Writes `message` to standard output, or logs it when interactive logging is off."""
    message = str(message)
    if not _interactive:
        logging.getLogger("pynn").info(message)
        return
    message = message + "\n" if line_break else message
    try:
        sys.stdout.write(message)
    except UnicodeEncodeError:  # a terminal that cannot show the bar's "━"
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        sys.stdout.write(message.replace("━", "=").encode(encoding, "ignore").decode(encoding))
    sys.stdout.flush()
