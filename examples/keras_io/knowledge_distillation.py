"""Knowledge distillation (keras-io, Keras 3 version), with only `import keras` swapped.

A small convolutional student learns from a larger teacher through a Distiller model that
overrides compile() and compute_loss(); MNIST is read from PYNN_DATASETS. EXAMPLE_SAMPLES (env)
cuts the training set for a quick run; by default the full example runs.
"""

import os

import numpy as np

import pynn as keras
from pynn import layers, ops


class Distiller(keras.Model):
    def __init__(self, student, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = student

    def compile(self, optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha=0.1,
                temperature=3):
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha = alpha
        self.temperature = temperature

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, allow_empty=False):
        teacher_pred = self.teacher(x, training=False)
        student_loss = self.student_loss_fn(y, y_pred)
        distillation_loss = self.distillation_loss_fn(
            ops.softmax(teacher_pred / self.temperature, axis=1),
            ops.softmax(y_pred / self.temperature, axis=1),
        ) * (self.temperature ** 2)
        return self.alpha * student_loss + (1 - self.alpha) * distillation_loss

    def call(self, x):
        return self.student(x)


def convnet(width, name):
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(width, (3, 3), strides=(2, 2), padding="same"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
        layers.Conv2D(2 * width, (3, 3), strides=(2, 2), padding="same"),
        layers.Flatten(),
        layers.Dense(10),
    ], name=name)


def main():
    samples = int(os.environ.get("EXAMPLE_SAMPLES", "60000"))
    epochs = int(os.environ.get("EXAMPLE_EPOCHS", "3"))
    keras.utils.set_random_seed(1)
    teacher = convnet(int(os.environ.get("EXAMPLE_TEACHER_WIDTH", "256")), "teacher")
    student = convnet(16, "student")
    student_scratch = keras.models.clone_model(student)

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    x_train = np.reshape(x_train[:samples].astype("float32") / 255.0, (-1, 28, 28, 1))
    y_train = y_train[:samples]
    x_test = np.reshape(x_test.astype("float32") / 255.0, (-1, 28, 28, 1))

    teacher.compile(optimizer=keras.optimizers.Adam(),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=[keras.metrics.SparseCategoricalAccuracy()])
    teacher.fit(x_train, y_train, epochs=epochs + 2, verbose=2)
    teacher_acc = teacher.evaluate(x_test, y_test, verbose=0)[1]

    distiller = Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(),
                      metrics=[keras.metrics.SparseCategoricalAccuracy()],
                      student_loss_fn=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True),
                      distillation_loss_fn=keras.losses.KLDivergence(),
                      alpha=0.1, temperature=10)
    distiller.fit(x_train, y_train, epochs=epochs, verbose=2)
    distilled = distiller.evaluate(x_test, y_test, verbose=0, return_dict=True)

    student_scratch.compile(optimizer=keras.optimizers.Adam(),
                            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                            metrics=[keras.metrics.SparseCategoricalAccuracy()])
    student_scratch.fit(x_train, y_train, epochs=epochs, verbose=2)
    scratch_acc = student_scratch.evaluate(x_test, y_test, verbose=0)[1]
    print(f"teacher accuracy {teacher_acc:.4f}, distilled student "
          f"{distilled['sparse_categorical_accuracy']:.4f}, student from scratch "
          f"{scratch_acc:.4f}")
    return teacher_acc, distilled["sparse_categorical_accuracy"], scratch_acc


if __name__ == "__main__":
    main()
