"""Training into a run folder, resumable at the last complete epoch.

Running the same `train` again on the same run folder resumes from the last checkpoint (with the
optimizer state), or does nothing if training already completed. A larger `--epochs` continues a
completed run. Every file is written atomically.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from cae_keras import calibration, data, distribution, models, preprocessing, stopping
from cae_keras.config import TrainConfig, load_config, save_config
from cae_keras.errors import CaeKerasError, ConfigError
from cae_keras.files import write_atomic, write_text_atomic
from cae_keras.runs import RunPaths, read_history, write_history


class TrainingError(CaeKerasError):
    """Training cannot go on (e.g. the loss became NaN)."""


def _epoch_checkpoint_callback(paths: RunPaths, history: list[dict]):
    """A Keras callback that, after each epoch, saves a checkpoint and the history, atomically."""
    import keras

    class EpochCheckpoint(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            self.cut_short = False

        def on_train_batch_end(self, batch, logs=None):
            if stopping.stop_requested():  # Ctrl-C or kill: stop here, deterministically
                self.model.stop_training = True
                self.cut_short = True

        def on_epoch_end(self, epoch, logs=None):
            if getattr(self, "cut_short", False):
                return  # an epoch cut short is not checkpointed; resuming redoes it
            logs = logs or {}
            loss = logs.get("loss")
            if loss is None or not math.isfinite(loss):
                self.model.stop_training = True
                last = history[-1]["epoch"] if history else 0
                raise TrainingError(
                    f"loss became {loss} at epoch {epoch + 1}; stopped. The last good checkpoint is epoch "
                    f"{last} in {paths.checkpoints}; try a lower learning rate."
                )
            done = epoch + 1
            # History first, then the checkpoint: a kill in between leaves history one epoch
            # ahead, and resuming trims it back to the checkpoint and redoes that epoch.
            history.append({"epoch": done, "loss": float(loss), "val_loss": logs.get("val_loss"),
                            "seconds": time.perf_counter() - self.started})
            write_history(paths.history, history)
            write_atomic(paths.checkpoint(done), lambda tmp: self.model.save(tmp))
            for old in paths.checkpoints.glob("epoch_*.keras"):
                if old != paths.checkpoint(done):
                    old.unlink(missing_ok=True)

    return EpochCheckpoint()


def _check_resumable(paths: RunPaths, config: TrainConfig) -> None:
    """Refuses a run folder that was started with a different config (epochs may differ)."""
    if not paths.config.is_file():
        return
    previous = load_config(paths.config)
    differences = config.differences(previous, ignore=("epochs",))
    if differences:
        raise ConfigError(
            f"{paths.root} holds a run with another config ({'; '.join(differences)}); "
            "use a new run folder or the same arguments to resume"
        )


def is_complete(paths: RunPaths, config: TrainConfig) -> bool:
    """The run holds a final model for all the requested epochs."""
    if not paths.model.is_file() or not paths.calibration.is_file():
        return False
    if models.get_spec(config.recipe.model).fitted_in_one_pass:
        return True
    history = read_history(paths.history)
    return bool(history) and history[-1]["epoch"] >= config.recipe.epochs


def train(config: TrainConfig, run_dir: Path, verbose: int | str = "auto", strategy: str = "none") -> RunPaths:
    """Trains `config.recipe.model` on the normals of `config.dataset.category` into `run_dir`; resumes if it can.

    Args:
        verbose: Keras verbosity: 'auto' or 1 for a progress bar, 2 for one line per epoch, 0 silent.
        strategy: 'none', 'mirrored' or 'multi-worker' (see `cae_keras.distribution`); a run
            started with one strategy can resume with another.

    Returns:
        the run folder's paths.

    Raises:
        ConfigError: the run folder holds another config, or arguments do not fit the model.
        DataError: the data cannot be read.
        TrainingError: the loss became NaN.
    """
    paths = RunPaths(Path(run_dir))
    spec = models.get_spec(config.recipe.model)
    calibration.check_scoring(spec, config)
    models.check_image_size(config.recipe.model, config.recipe.image_size)
    _check_resumable(paths, config)
    if is_complete(paths, config):
        if verbose:
            done = "fitted" if models.get_spec(config.recipe.model).fitted_in_one_pass else \
                f"trained for {config.recipe.epochs} epochs"
            print(f"{paths.root}: already {done}; nothing to do")
        return paths
    # Training reads only what it uses: the test split is not indexed (a test-mask problem is
    # evaluate's to report). The data is found before the run folder is written, so that a wrong
    # --data or --category leaves no config.json behind to refuse the corrected command.
    category = data.category_of(config)
    train_paths, val_paths, source = data.validation_split(category, config.dataset.val_fraction, config.recipe.seed)
    paths.root.mkdir(parents=True, exist_ok=True)
    save_config(config, paths.config)
    if verbose:
        print(f"{category.layout} layout: {len(train_paths)} training normals; validation normals: {source}")
    calibration.warn_if_few(len(val_paths), config.scoring.threshold_quantile, from_folder=bool(category.validation))
    train_images = preprocessing.to_uint8(
        data.load_images(train_paths, config.recipe.image_size, "train images" if verbose else None))
    val_images = data.load_images(val_paths, config.recipe.image_size, "validation images" if verbose else None)

    if spec.fitted_in_one_pass:
        started = time.perf_counter()
        model, record = spec.fit(config, train_images, val_images, verbose)
        write_history(paths.history, [{"epoch": 1, "loss": None, "val_loss": None,
                                       "seconds": time.perf_counter() - started}])
        if record is not None:
            write_text_atomic(paths.selection, json.dumps(record, indent=2) + "\n")
        write_atomic(paths.model, lambda tmp: model.save(tmp))
    else:
        model = _fit(config, paths, train_images, val_images, verbose, strategy)
        write_atomic(paths.model, lambda tmp: _without_optimizer(model, config).save(tmp))
    _calibrate(model, spec, config, val_images, val_paths, paths, verbose)
    return paths


def _fit(config: TrainConfig, paths: RunPaths, train_images: np.ndarray, val_images: np.ndarray, verbose,
         strategy: str = "none"):
    """model.fit from the last checkpoint (or a new model), one checkpoint per epoch."""
    import keras

    history = read_history(paths.history)
    resume = paths.last_checkpoint()
    keras.utils.set_random_seed(config.recipe.seed + (resume[0] if resume else 0))
    for leftover in paths.checkpoints.glob(".*.tmp*"):  # a write cut short by a kill
        leftover.unlink()
    scope = distribution.make_strategy(strategy)
    replicas = scope.num_replicas_in_sync
    if replicas > 1:
        if config.recipe.batch_size % replicas:
            raise ConfigError(f"batch size {config.recipe.batch_size} must be a multiple of the {replicas} replicas")
        # Every step must split evenly over the replicas: training drops a last smaller batch,
        # validation repeats its first images up to a multiple of the replica count.
        val_images = np.concatenate([val_images, val_images[: (-len(val_images)) % replicas]])
    spec = models.get_spec(config.recipe.model)
    with scope.scope():  # variables must be made inside the strategy's scope
        if resume:
            initial_epoch, checkpoint = resume
            history = [row for row in history if row["epoch"] <= initial_epoch]
            trainable = models.load_model(checkpoint)
            if verbose:
                print(f"resuming {paths.root} from epoch {initial_epoch} ({checkpoint.name})")
        else:
            initial_epoch, history = 0, []
            trainable = spec.training_model(models.build_model(config.recipe.model, config.recipe.image_size,
                                                               config.runtime.precision))
            trainable.compile(optimizer=keras.optimizers.Adam(config.recipe.learning_rate), loss=spec.loss_function(),
                              jit_compile={"auto": "auto", "on": True, "off": False}[config.runtime.jit_compile])
    augment = config.augmentation.augment
    make = spec.make_dataset
    train_data = make(
        train_images, config.recipe.batch_size, training=True, seed=config.recipe.seed,
        rotation_degrees=config.augmentation.rotation_degrees if augment else 0.0,
        brightness_delta=config.augmentation.brightness_delta if augment else 0.0,
        horizontal_flip=config.augmentation.horizontal_flip and augment, drop_remainder=replicas > 1)
    val_data = make(val_images, config.recipe.batch_size, training=False, seed=config.recipe.seed)
    if initial_epoch < config.recipe.epochs:
        with stopping.stop_at_boundaries():
            trainable.fit(train_data, validation_data=val_data, epochs=config.recipe.epochs,
                          initial_epoch=initial_epoch, callbacks=[_epoch_checkpoint_callback(paths, history)],
                          verbose=verbose,
                          shuffle=False)  # the dataset shuffles itself
    return spec.inference_model(trainable)


def _without_optimizer(model, config: TrainConfig):
    """A copy of the model without optimizer state: the final `.keras` file a third of the size."""
    clean = models.build_model(config.recipe.model, config.recipe.image_size, config.runtime.precision)
    clean.set_weights(model.get_weights())
    return clean


def _calibrate(model, spec, config: TrainConfig, val_images: np.ndarray, val_paths: list[Path],
               paths: RunPaths, verbose=0) -> None:
    """Scores the validation normals and stores the threshold chosen from them."""
    result = calibration.calibrate(model, spec, config, val_images)
    result["validation_images"] = [str(p) for p in val_paths]
    write_text_atomic(paths.calibration, json.dumps(result, indent=2) + "\n")
    if verbose:
        print(f"threshold {result['threshold']:.4g}: {result['rule']}; expected false-alarm rate on new normal "
              f"images about {result['expected_false_alarm_rate']:.1%}")
