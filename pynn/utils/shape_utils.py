"""How a shape reads in messages and summaries: Keras's "(None, 28, 28)"."""


def shape_str(shape) -> str:
    """A shape (a tuple of ints, None for an unknown dimension) as "(None, 28, 28)".

    Example:
        >>> shape_str((None, 28, 28))
        '(None, 28, 28)'
    """
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
