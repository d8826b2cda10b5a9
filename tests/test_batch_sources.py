"""fit, evaluate and predict on a PyDataset or a generator of batches, as Keras 3 takes them."""

import numpy as np
import pytest

import pynn
from pynn import layers

RNG = np.random.default_rng(0)
X = RNG.standard_normal((48, 4)).astype(np.float32)
Y = (X @ np.array([1.0, -2.0, 0.5, 3.0], np.float32))[:, None]


class Batches(pynn.utils.PyDataset):
    def __init__(self, x, y, batch_size=8, weights=None, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.weights = x, y, batch_size, weights
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        if self.weights is not None:
            return self.x[s], self.y[s], self.weights[s]
        return self.x[s], self.y[s]

    def on_epoch_end(self):
        self.epochs_ended += 1


def regression(seed=0):
    pynn.utils.set_random_seed(seed)
    model = pynn.Sequential([pynn.Input((4,)), layers.Dense(1)])
    model.compile(optimizer=pynn.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    return model


def test_a_pydataset_trains_as_the_same_arrays_in_the_same_batches():
    a, b = regression(), regression()
    ds = Batches(X, Y)
    ha = a.fit(ds, epochs=3, verbose=0, validation_data=Batches(X[:16], Y[:16]))
    hb = b.fit(X, Y, batch_size=8, epochs=3, shuffle=False, verbose=0,
               validation_data=(X[:16], Y[:16]))
    assert ha.history == hb.history
    assert ds.epochs_ended == 3
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    assert a.evaluate(Batches(X, Y), verbose=0) == b.evaluate(X, Y, batch_size=8, verbose=0)
    np.testing.assert_array_equal(a.predict(Batches(X, Y), verbose=0), a.predict(X, verbose=0))


def test_generators_with_and_without_steps_per_epoch():
    def gen():
        while True:
            for s in range(0, 48, 16):
                yield X[s:s + 16], Y[s:s + 16]

    model = regression()
    h = model.fit(gen(), steps_per_epoch=3, epochs=2, verbose=0)
    assert len(h.history["loss"]) == 2
    finite = ((X[s:s + 16], Y[s:s + 16]) for s in range(0, 48, 16))
    with pytest.warns(UserWarning, match="ran out of data"):
        h = regression().fit(finite, epochs=3, verbose=0)
    assert len(h.history["loss"]) == 1
    model.evaluate(gen(), steps=2, verbose=0)
    out = model.predict((X[s:s + 8] for s in range(0, 48, 8)), verbose=0)
    np.testing.assert_allclose(out, model.predict(X, verbose=0), rtol=1e-6)


def test_batches_may_carry_sample_weights():
    weighted = regression().fit(Batches(X, Y, weights=np.zeros(48, np.float32)), epochs=1,
                                verbose=0)
    assert weighted.history["loss"] == [0.0]


def test_steps_per_epoch_limits_array_epochs_too():
    model = regression()
    calls = []

    class Count(pynn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            calls.append(batch)
    model.fit(X, Y, batch_size=8, steps_per_epoch=2, epochs=2, callbacks=[Count()], verbose=0)
    assert calls == [0, 1, 0, 1]


@pytest.mark.parametrize("call,match", [
    (lambda m: m.fit(Batches(X, Y), Y), "`y` must be None"),
    (lambda m: m.fit(Batches(X, Y), validation_split=0.2), "validation_split"),
    (lambda m: m.fit(iter([X[:8]])), "must hold its targets"),
    (lambda m: m.fit(iter([(X[:8], Y[:8], None, 1)])), "tuple of 4"),
    (lambda m: m.fit(Batches(X, Y), steps_per_epoch=0), "positive int"),
    (lambda m: m.fit(Batches(X[:0], Y[:0])), "no batches"),
    (lambda m: m.evaluate(iter([])), "no batches"),
])
def test_bad_batch_sources_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(regression())


def test_pydataset_arguments_are_checked():
    with pytest.raises(ValueError, match="workers"):
        Batches(X, Y, workers=0)
    assert pynn.utils.Sequence is pynn.utils.PyDataset
