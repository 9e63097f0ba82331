"""Training on several devices or machines through `tf.distribute`.

- `mirrored`: one machine, the model copied on every GPU (or every logical CPU device when there
  is no GPU), gradients averaged each step. The batch size stays the global batch size.
- `multi-worker`: several machines, each running the same command; `TF_CONFIG` (JSON, set by the
  cluster) names the workers and this one's index. Without `TF_CONFIG` it trains alone.
"""

from __future__ import annotations

from cae_keras.errors import ConfigError

STRATEGIES = ("none", "mirrored", "multi-worker")


def split_cpu(n_devices: int) -> None:
    """Splits the CPU into `n_devices` logical devices, for trying `mirrored` on a laptop or in tests.

    Must run before TensorFlow starts its runtime (before any tensor is made).

    Raises:
        ConfigError: TensorFlow is already initialised.
    """
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n_devices)
    except RuntimeError as error:
        raise ConfigError(f"cannot split the CPU into {n_devices} devices: {error}") from None


def make_strategy(name: str):
    """The `tf.distribute` strategy of that name ('none' gives TensorFlow's default strategy)."""
    import tensorflow as tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy '{name}'; choose one of {', '.join(STRATEGIES)}")
