"""The Trainer pattern (keras-io recipe, Keras 3 version), with only `import keras` swapped and
`tf.GradientTape` read as `keras.GradientTape` (pynn's tape): one Model subclass holds a custom
train_step and test_step that two models, a Sequential and a functional one, share. MNIST is
read from PYNN_DATASETS; EXAMPLE_SAMPLES and EXAMPLE_EPOCHS (env) cut the run.
"""

import os

import pynn as keras


class MyTrainer(keras.Model):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy()
        self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy()

    @property
    def metrics(self):
        return [self.accuracy_metric]

    def train_step(self, data):
        x, y = data
        with keras.GradientTape() as tape:
            y_pred = self.model(x, training=True)
            loss = self.loss_fn(y, y_pred)
        trainable_vars = self.trainable_variables
        gradients = tape.gradient(loss, trainable_vars)
        self.optimizer.apply_gradients(zip(gradients, trainable_vars))
        for metric in self.metrics:
            metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        y_pred = self.model(x, training=False)
        for metric in self.metrics:
            metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def call(self, x):
        return self.model(x)


def main():
    samples = int(os.environ.get("EXAMPLE_SAMPLES", "60000"))
    epochs = int(os.environ.get("EXAMPLE_EPOCHS", "5"))
    keras.utils.set_random_seed(1)
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    x_train, x_test = x_train[:samples] / 255.0, x_test / 255.0
    y_train = y_train[:samples]

    model_a = keras.models.Sequential([
        keras.layers.Flatten(input_shape=(28, 28)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ])
    func_input = keras.Input(shape=(28, 28, 1))
    x = keras.layers.Flatten(input_shape=(28, 28))(func_input)
    x = keras.layers.Dense(512, activation="relu")(x)
    x = keras.layers.Dropout(0.4)(x)
    func_output = keras.layers.Dense(10, activation="softmax")(x)
    model_b = keras.Model(func_input, func_output)

    trainer_1 = MyTrainer(model_a)
    trainer_2 = MyTrainer(model_b)
    trainer_1.compile(optimizer=keras.optimizers.SGD())
    h1 = trainer_1.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=2,
                       validation_data=(x_test, y_test))
    trainer_2.compile(optimizer=keras.optimizers.Adam())
    h2 = trainer_2.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=2,
                       validation_data=(x_test, y_test))
    accs = (h1.history["val_sparse_categorical_accuracy"][-1],
            h2.history["val_sparse_categorical_accuracy"][-1])
    print(f"validation accuracy: trainer_1 {accs[0]:.4f}, trainer_2 {accs[1]:.4f}")
    return accs


if __name__ == "__main__":
    main()
