"""What a notebook shows: a model's HTML summary, plot_model, plot_history."""

import shutil
import sys

import numpy as np
import pytest

import pynn
from pynn import layers


def functional():
    x = pynn.Input((6,), name="x")
    h = layers.Dense(4, name="hidden")(x)
    return pynn.Model(x, layers.Add(name="sum")([h, layers.Dense(4, name="skip")(x)]),
                      name="net")


def test_a_model_shows_its_summary_as_html():
    model = functional()
    html = model._repr_html_()
    for text in ("net", "hidden (Dense)", "(None, 4)", "28", "Connected to", "hidden[0][0]",
                 "Total params: 56"):
        assert text in html, text
    unbuilt = pynn.Sequential([layers.Dense(2)])
    assert "built=False" in unbuilt._repr_html_()


def test_plot_model_writes_the_graph(tmp_path):
    model = functional()
    path = tmp_path / "net.dot"
    assert pynn.utils.plot_model(model, to_file=str(path), show_shapes=True) is None
    dot = path.read_text()
    assert dot.startswith("digraph model {") and "hidden (Dense)|output: (None, 4)" in dot
    assert dot.count("->") == 4  # x->hidden, x->skip, hidden->sum, skip->sum
    seq = pynn.Sequential([pynn.Input((3,)), layers.Dense(2), layers.Dense(1)])
    assert pynn.utils.model_to_dot(seq).count("->") == 1
    with pytest.raises(ValueError, match="rankdir"):
        pynn.utils.model_to_dot(seq, rankdir="XY")


@pytest.mark.skipif(shutil.which("dot") is not None, reason="Graphviz is installed here")
def test_plot_model_without_graphviz_says_what_to_install(tmp_path):
    with pytest.raises(ImportError, match="graphviz"):
        pynn.utils.plot_model(functional(), to_file=str(tmp_path / "net.png"))


def test_plot_history_needs_matplotlib_or_draws(monkeypatch):
    model = pynn.Sequential([pynn.Input((3,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    history = model.fit(x, x[:, :1], epochs=2, validation_split=0.25, verbose=0)
    try:
        import matplotlib
        matplotlib.use("Agg")
    except ImportError:
        with pytest.raises(ImportError, match="matplotlib"):
            pynn.utils.plot_history(history)
        return
    ax = history.plot()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["loss", "val_loss", "mae",
                                                                   "val_mae"]
    with pytest.raises(ValueError, match="no values"):
        pynn.utils.plot_history(history, metrics=["accuracy"])
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="matplotlib"):
        pynn.utils.plot_history(history)


def test_the_html_parses_into_the_layer_table():
    from html.parser import HTMLParser

    class Table(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.cell, self.stack = [], None, []

        def handle_starttag(self, tag, attrs):
            if tag in ("br", "hr", "img", "meta"):  # void elements have no end tag
                return
            self.stack.append(tag)
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
            self.stack.pop()
            if tag in ("td", "th"):
                self.rows[-1].append(self.cell)
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    model = functional()
    parser = Table()
    parser.feed(model._repr_html_())
    parser.close()
    assert not parser.stack  # every tag closed
    header, *rows = parser.rows
    assert header == ["Layer (type)", "Output Shape", "Param #", "Connected to"]
    assert [r[0] for r in rows] == [f"{layer.name} ({type(layer).__name__})"
                                    for layer in model.layers]
    assert [int(r[2].replace(",", "")) for r in rows] == [layer.count_params()
                                                          for layer in model.layers]
