"""model.summary(): Keras 3's table of layers, output shapes and parameter counts."""

from .shape_utils import shape_str


def readable_size(n_bytes: float) -> str:
    """'397.54 KB' as Keras writes sizes (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024


def _rows(model) -> list[list[str]]:
    """(name (type), output shape, parameters, connected to) for each layer."""
    def params(layer):
        return f"{layer.count_params():,}"
    if not hasattr(model, "connections"):  # a stack: each layer's output feeds the next
        rows, shape = [], model.input_shape
        for layer in model.layers:
            shape = layer.compute_output_shape(shape)
            rows.append([f"{layer.name} ({type(layer).__name__})", shape_str(shape), params(layer),
                         ""])
        return rows
    first = {id(t._layer): shape_str(t.shape) for t in model.inputs}  # each InputLayer's shape
    for t in model._calls:  # a call with several outputs: the list of their shapes, as Keras
        shape = ("[" + ", ".join(shape_str(s.shape) for s in t._siblings) + "]" if t._siblings
                 else shape_str(t.shape))
        first.setdefault(id(t._layer), shape)
    rows, connections = [], model._connections()  # every layer's, in one pass over the calls
    for layer in model.layers:
        shape = first[id(layer)]
        links = connections.get(id(layer), [])
        rows.append([f"{layer.name} ({type(layer).__name__})", shape, params(layer),
                     ", ".join(links) if links else "-"])
    return rows


def print_summary(model, line_length=None, print_fn=print) -> None:
    line_length = line_length or 88
    rows = _rows(model)
    graph = hasattr(model, "connections")  # a functional model: Keras adds "Connected to"
    if graph:
        line_length = max(line_length, 110)
        widths = [int(line_length * 0.3), int(line_length * 0.22), int(line_length * 0.12)]
    else:
        widths = [int(line_length * 0.45), int(line_length * 0.35)]
    widths.append(line_length - sum(widths) - len(widths) - 2)  # the borders between columns
    headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if graph else [])

    def row(cells, left="│", mid="│", right="│"):
        parts = []
        for i, (c, w) in enumerate(zip(cells, widths)):
            c = str(c)
            if len(c) > w - 2:
                c = c[: w - 3] + "…"
            parts.append(" " + (c.rjust(w - 2) if i == 2 else c.ljust(w - 2)) + " ")
        return left + mid.join(parts) + right

    def rule(left, mid, right, ch):
        return left + mid.join(ch * w for w in widths) + right

    lines = [f'Model: "{model.name}"', rule("┏", "┳", "┓", "━"),
             row(headers, "┃", "┃", "┃"), rule("┡", "╇", "┩", "━")]
    for i, cells in enumerate(rows):
        lines.append(row(cells if graph else cells[:3]))
        if i < len(rows) - 1:
            lines.append(rule("├", "┼", "┤", "─"))
    lines.append(rule("└", "┴", "┘", "─"))
    lines += [" " + text for text in _totals(model)]
    print_fn("\n".join(lines))


def _totals(model) -> list[str]:
    """The parameter counts under the table."""
    trainable = sum(w.size for w in model.trainable_weights)
    total = sum(w.size for w in model.weights)
    lines = [f"Total params: {total:,} ({readable_size(total * 4)})",
             f"Trainable params: {trainable:,} ({readable_size(trainable * 4)})",
             f"Non-trainable params: {total - trainable:,} "
             f"({readable_size((total - trainable) * 4)})"]
    opt = model.optimizer
    if opt is not None and opt._core is not None and opt.iterations > 0:
        state = model._core.optimizer_state().size
        lines.append(f"Optimizer params: {state:,} ({readable_size(state * 4)})")
    return lines


def summary_html(model) -> str:
    """The summary as an HTML table, for notebooks (Model._repr_html_)."""
    from html import escape

    graph = hasattr(model, "connections")
    headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if graph else [])
    cell = 'style="text-align:{};padding:2px 12px"'
    head = "".join(f"<th {cell.format('left')}>{escape(h)}</th>" for h in headers)
    body = ""
    for cells in _rows(model):
        cells = cells if graph else cells[:3]
        body += "<tr>" + "".join(
            f"<td {cell.format('right' if i == 2 else 'left')}><code>{escape(c)}</code></td>"
            for i, c in enumerate(cells)) + "</tr>"
    totals = "<br>".join(escape(t) for t in _totals(model))
    return (f"<div><b>Model: &quot;{escape(model.name)}&quot;</b>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"<p>{totals}</p></div>")
