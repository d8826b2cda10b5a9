"""Pictures of models and of training: plot_model (Graphviz) and plot_history (matplotlib).

Both libraries are optional: without them these functions raise ImportError with what to
install, and nothing else in pynn needs them.
"""

import os
import shutil
import subprocess
from html import escape


def model_to_dot(model, show_shapes: bool = False, show_layer_names: bool = True,
                 rankdir: str = "TB") -> str:
    """The model's graph in Graphviz's DOT language: one box per layer, an arrow per
    connection."""
    from .summary import _rows

    if rankdir not in ("TB", "LR"):
        raise ValueError(f"rankdir must be 'TB' or 'LR', got {rankdir!r}")
    rows = _rows(model)
    names = [layer.name for layer in model.layers]
    lines = ["digraph model {", f"  rankdir={rankdir};",
             '  node [shape=record, fontname="Helvetica", fontsize=11];']
    for i, (layer, (title, shape, _, _links)) in enumerate(zip(model.layers, rows)):
        label = title if show_layer_names else type(layer).__name__
        if show_shapes:
            label = f"{{{escape(label)}|output: {escape(shape)}}}"
        else:
            label = escape(label)
        lines.append(f'  n{i} [label="{label}"];')
    if hasattr(model, "connections"):
        for i, layer in enumerate(model.layers):
            for link in model.connections(layer):
                src = link.split("[", 1)[0]
                if src in names:
                    lines.append(f"  n{names.index(src)} -> n{i};")
    else:
        lines += [f"  n{i} -> n{i + 1};" for i in range(len(names) - 1)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def plot_model(model, to_file: str = "model.png", show_shapes: bool = False,
               show_dtype: bool = False, show_layer_names: bool = True, rankdir: str = "TB",
               expand_nested: bool = False, dpi: int = 200, **kwargs):
    """Draws the model's graph into `to_file` (.png, .svg, .pdf with Graphviz's `dot` program;
    .dot writes the graph description itself and needs nothing), as keras.utils.plot_model.

    Raises:
        ImportError: Graphviz's `dot` is not installed (for any format but .dot).
    """
    dot = model_to_dot(model, show_shapes=show_shapes, show_layer_names=show_layer_names,
                       rankdir=rankdir)
    ext = os.path.splitext(to_file)[1].lower().lstrip(".") or "png"
    if ext == "dot":
        with open(to_file, "w", encoding="utf-8") as f:
            f.write(dot)
        return None
    exe = shutil.which("dot")
    if exe is None:
        raise ImportError("plot_model needs Graphviz's `dot` program to draw a picture "
                          "(apt install graphviz, brew install graphviz, or conda install "
                          "graphviz); to_file='model.dot' writes the graph without it")
    subprocess.run([exe, f"-T{ext}", f"-Gdpi={int(dpi)}", "-o", to_file], input=dot.encode(),
                   check=True, capture_output=True)
    try:  # in a notebook, show the picture as Keras does
        from IPython.display import Image
        return Image(to_file) if ext == "png" else None
    except ImportError:
        return None


def plot_history(history, metrics=None, ax=None):
    """Plots a History's per-epoch values (loss and metrics, with their val_ versions dashed in
    the same colour) with matplotlib; returns the Axes.

    Args:
        history: a pynn History (what fit returns) or its `.history` dict.
        metrics: the keys to draw (default: all but the val_ ones, which follow their key).
        ax: a matplotlib Axes to draw on (default: a new figure).
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting a History needs matplotlib (pip install matplotlib)") \
            from None
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise ValueError("plot_history: the history holds no epochs yet")
    keys = metrics or [k for k in logs if not k.startswith("val_")]
    unknown = [k for k in keys if k not in logs]
    if unknown:
        raise ValueError(f"plot_history: no values for {unknown}; the history has "
                         f"{sorted(logs)}")
    if ax is None:
        _, ax = plt.subplots()
    for key in keys:
        epochs = range(1, len(logs[key]) + 1)
        (line,) = ax.plot(epochs, logs[key], label=key)
        if "val_" + key in logs:
            ax.plot(range(1, len(logs["val_" + key]) + 1), logs["val_" + key], "--",
                    color=line.get_color(), label="val_" + key)
    ax.set_xlabel("epoch")
    ax.legend()
    return ax
