"""An MLP on scikit-learn's bundled digits (8-by-8 images, no download), trained with
tracker and Adam.

    python examples/train_digits.py [--epochs N] [--plot loss.png]

A fixed seed and split; prints a progress bar per epoch, saves the loss curve as a
PNG, and ends with the line `test accuracy: 0.9xx`.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import tracker as tr
from tracker import nn, optim
from tracker.nn import losses


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[labels]


def progress(epoch: int, epochs: int, done: int, total: int, loss: float) -> None:
    width = 30
    filled = width * done // total
    bar = "#" * filled + "-" * (width - filled)
    sys.stdout.write(f"\repoch {epoch:2d}/{epochs} [{bar}] loss {loss:.4f}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--plot", type=Path, default=Path("digits_loss.png"))
    args = parser.parse_args()

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    t_train = one_hot(y_train, 10)

    model = nn.Chain(
        nn.Dense(64, 128, np.tanh, rng=1),
        nn.Dense(128, 10, rng=2),
    )
    state = optim.setup(optim.Adam(3e-3), model)
    rng = np.random.default_rng(0)
    batch = 32

    def loss_of(m, xb, tb):
        return losses.logitcrossentropy(m(xb), tb)

    start = time.perf_counter()
    history = []
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        running = 0.0
        for k, first in enumerate(range(0, len(order), batch), start=1):
            rows = order[first : first + batch]
            loss, (grad, _, _) = tr.withgradient(loss_of, model, x_train[rows], t_train[rows])
            state, model = optim.update(state, model, grad)
            running += float(loss)
            history.append(float(loss))
            progress(epoch, args.epochs, min(first + batch, len(order)), len(order), running / k)
        sys.stdout.write("\n")
    elapsed = time.perf_counter() - start

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history, linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.set_title("MLP on digits, trained with tracker")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=100)
    print(f"loss curve saved to {args.plot}; trained in {elapsed:.1f} s")

    predicted = np.argmax(model(x_test), axis=1)
    accuracy = float(np.mean(predicted == y_test))
    print(f"test accuracy: {accuracy:.3f}")


if __name__ == "__main__":
    main()
