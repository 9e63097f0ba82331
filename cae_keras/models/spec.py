"""What the package knows about a registered model: `ModelSpec`."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

from cae_keras.errors import ConfigError


def _same(model):
    return model


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registered model: how it is built, trained and scored. Behaviour lives here as typed
    values and callables, each given by the model's own module, so no caller compares names.

    Exactly one of `loss` and `fit` is given: a model is trained by gradient descent on its loss,
    or fitted in one pass over the normals.
    """

    name: str
    description: str
    build: Callable[[int], "keras.Model"]  # noqa: F821 - keras imported lazily
    reconstructs: bool  # returns x̂ [N, S, S, 3] scored by an error map; else its own map [N, S, S]
    stride: int  # the image size must be a multiple of this
    loss: Callable[[], object] | None = None  # what `model.compile` gets as its loss
    fit: Callable | None = None  # (config, train uint8, val float, verbose) -> (model, record or None)
    default_epochs: int = 200  # the recipe's length when `epochs` is not given
    training_model: Callable = _same  # the model `fit` trains: itself, or one sharing its weights
    inference_model: Callable = _same  # the scoring model from a (possibly reloaded) training model
    dataset: Callable | None = None  # how training batches are made; None: `preprocessing.make_dataset`
    register: Callable[[], object] | None = None  # registers custom layers and losses for loading

    def __post_init__(self) -> None:
        if (self.loss is None) == (self.fit is None):
            raise ValueError(f"model '{self.name}': give exactly one of loss (gradient descent) and fit (one pass)")

    @property
    def output(self) -> str:
        """'reconstruction' or 'anomaly_map', as reports and exports name it."""
        return "reconstruction" if self.reconstructs else "anomaly_map"

    @property
    def fitted_in_one_pass(self) -> bool:
        """Fitted by one pass over the normals (no epochs, no optimizer), not by gradient descent."""
        return self.fit is not None

    def loss_function(self):
        """What `model.compile` gets as its loss."""
        return self.loss()

    def make_dataset(self, images, batch_size: int, training: bool, seed: int = 0, **augment):
        """The model's training or validation batches from `[N, S, S, 3] uint8` normals."""
        if self.dataset is not None:
            return self.dataset(images, batch_size, training=training, seed=seed, **augment)
        from cae_keras import preprocessing

        return preprocessing.make_dataset(images, batch_size, training=training, seed=seed, **augment)


def check_size(image_size: int, stride: int, name: str) -> None:
    """Raises ConfigError if `image_size` is not a multiple of the model's `stride`."""
    if image_size % stride:
        raise ConfigError(
            f"image size {image_size} is not a multiple of {stride}, which model '{name}' needs "
            f"(its encoder halves the size {int(math.log2(stride))} times); try {stride * round(image_size / stride)}"
        )


def mse():
    """The seed's loss."""
    return "mse"
