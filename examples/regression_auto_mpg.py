"""Linear regression on the UCI Auto MPG data, trained straight from a pandas DataFrame.

Shows: reading and cleaning a table with pandas, one-hot encoding, normalising with
training-set statistics, fitting `Sequential([Input, Dense(1)])` on a DataFrame/Series with
`validation_split=0.2`, reading `history.history['val_loss']`, and checking the model
against two references on the same validation rows: predicting the training mean (the
baseline to beat) and the exact least-squares fit (what a linear model can at best reach).

Keras's `validation_split` takes the LAST 20% of the rows as validation data, so the
DataFrame is shuffled once, with a fixed seed, before fitting: the split is random but
reproducible. A further 20% of the cars is held out first as a test set.

The data file is looked up at `$PYNN_DATASETS/auto-mpg/auto-mpg.data`, then at
`../shared/data/auto-mpg/auto-mpg.data` beside the repository. Run (from the repository root):

    PYNN_DATASETS=../shared/data python examples/regression_auto_mpg.py [--epochs 100]
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

try:
    import pynn as keras
except ImportError:  # run from a source checkout where pynn is built in place, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import pynn as keras
from pynn import layers

COLUMNS = ["mpg", "cylinders", "displacement", "horsepower", "weight", "acceleration",
           "model_year", "origin", "car_name"]
VALIDATION_SPLIT = 0.2
SEED = 0


def find_data() -> Path:
    candidates = []
    if os.environ.get("PYNN_DATASETS"):
        candidates.append(Path(os.environ["PYNN_DATASETS"]) / "auto-mpg" / "auto-mpg.data")
    repo = Path(__file__).resolve().parent.parent
    candidates.append(repo.parent / "shared" / "data" / "auto-mpg" / "auto-mpg.data")
    for path in candidates:
        if path.is_file():
            return path
    sys.exit("auto-mpg.data not found; looked at:\n  " + "\n  ".join(map(str, candidates)) +
             "\nSet PYNN_DATASETS to the folder holding auto-mpg/auto-mpg.data.")


def load_table(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, sep=r"\s+", names=COLUMNS, na_values="?", quotechar='"')
    n = len(df)
    df = df.dropna().drop(columns="car_name")  # 6 cars have no horsepower ('?')
    print(f"Read {n} cars from {path}; {n - len(df)} without horsepower dropped, {len(df)} left")
    df["origin"] = df["origin"].map({1: "USA", 2: "Europe", 3: "Japan"})
    return pd.get_dummies(df, columns=["origin"], prefix="", prefix_sep="", dtype="float32")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    args = parser.parse_args()

    keras.utils.set_random_seed(SEED)
    df = load_table(find_data())

    # Shuffle once (fixed seed), then hold out a test set; fit() later takes the last 20% of
    # the remaining rows as its validation set.
    df = df.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    test_df = df.sample(frac=0.2, random_state=SEED)
    train_df = df.drop(test_df.index)

    x_train, y_train = train_df.drop(columns="mpg"), train_df["mpg"]
    x_test, y_test = test_df.drop(columns="mpg"), test_df["mpg"]

    # The rows fit() trains on and the rows it validates on, exactly as Keras splits them.
    n_fit = int(len(x_train) * (1.0 - VALIDATION_SPLIT))
    fit_rows, val_rows = slice(0, n_fit), slice(n_fit, None)

    # Normalise with the statistics of the rows the model trains on only.
    mean = x_train.iloc[fit_rows].mean()
    std = x_train.iloc[fit_rows].std()
    x_train = (x_train - mean) / std
    x_test = (x_test - mean) / std
    n_features = x_train.shape[1]
    print(f"Features ({n_features}): {', '.join(x_train.columns)}")
    print(f"Rows: {n_fit} train, {len(x_train) - n_fit} validation (last 20% of the "
          f"train frame), {len(x_test)} test\n")

    model = keras.Sequential([
        keras.Input(shape=(n_features,)),
        layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=args.learning_rate),
                  loss="mse", metrics=["mae"])
    model.summary()

    history = model.fit(x_train, y_train, epochs=args.epochs, validation_split=VALIDATION_SPLIT,
                        verbose=0)
    hist = pd.DataFrame(history.history, index=pd.Index(history.epoch, name="epoch") + 1)
    print("\nTraining history (every 20th epoch):")
    print(hist.iloc[19::20].round(3).to_string())

    # References on the same validation rows.
    y_fit, y_val = y_train.iloc[fit_rows], y_train.iloc[val_rows]
    baseline_mse = float(((y_val - y_fit.mean()) ** 2).mean())
    a_fit = np.c_[x_train.iloc[fit_rows].to_numpy(), np.ones(n_fit)]
    a_val = np.c_[x_train.iloc[val_rows].to_numpy(), np.ones(len(y_val))]
    coef, *_ = np.linalg.lstsq(a_fit, y_fit.to_numpy(), rcond=None)
    lstsq_mse = float(((a_val @ coef - y_val.to_numpy()) ** 2).mean())
    val_mse = history.history["val_loss"][-1]
    val_mae = history.history["val_mae"][-1]

    test_mse, test_mae = model.evaluate(x_test, y_test, verbose=0)
    test_baseline_mse = float(((y_test - y_fit.mean()) ** 2).mean())

    print("\nWeights (mpg change per standard deviation of each feature):")
    kernel, bias = model.get_weights()
    for name, w in zip(x_train.columns, kernel[:, 0], strict=True):
        print(f"  {name:>13s} {w:+7.3f}")
    print(f"  {'bias':>13s} {bias[0]:+7.3f}")

    print(f"\nMean squared error (mpg^2) after {args.epochs} epochs:")
    print(f"  {'':34s} {'validation':>10s} {'test':>8s}")
    print(f"  {'linear model (pynn)':34s} {val_mse:10.3f} {test_mse:8.3f}")
    print(f"  {'predicting the training mean':34s} {baseline_mse:10.3f} {test_baseline_mse:8.3f}")
    print(f"  {'exact least squares (reference)':34s} {lstsq_mse:10.3f} {'':>8s}")
    print(f"Mean absolute error: {val_mae:.3f} mpg validation, {test_mae:.3f} mpg test")
    verdict = "beats" if val_mse < baseline_mse else "does NOT beat"
    print(f"The linear model {verdict} the mean baseline on validation: "
          f"MSE {val_mse:.2f} vs {baseline_mse:.2f} ({val_mse / baseline_mse:.0%} of it).")


if __name__ == "__main__":
    main()
