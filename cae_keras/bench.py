"""Speed and memory of a model on this machine, measured, never asserted.

Figures (medians over repeated timings of one run):
- training images/s through the real input pipeline (uint8 in memory, augmentation, batching)
  and from tensors already in memory; their ratio is the pipeline's overhead;
- inference images/s at batch 32 and latency p50 / p99 at batch 1;
- FLOPs per image (counted from the layers) and the GFLOP/s achieved;
- peak resident memory of the process, and the machine.
"""

from __future__ import annotations

import os
import platform
import resource
import time

import numpy as np

from cae_keras import models
from cae_keras.config import RecipeConfig, RuntimeConfig
from cae_keras.synth import SynthConfig, make_sample


_RECIPE = RecipeConfig()  # the defaults of `cae-keras train`: size, batch, learning rate

def forward_flops(model) -> int:
    """Multiply-adds x 2 of one image's forward pass: convolutions, transposed convolutions, dense layers."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):  # a nested network (e.g. DRAEM's two)
            total += forward_flops(layer)
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            h, w, c_out = layer.output.shape[1:]
            if isinstance(layer, keras.layers.Conv2DTranspose):  # every input pixel meets the whole kernel
                h_in, w_in = layer.input.shape[1:3]
                total += 2 * kh * kw * c_in * c_out * h_in * w_in
            else:
                total += 2 * kh * kw * c_in * c_out * h * w
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    import tensorflow as tf

    return {
        "cpu": _cpu_name(), "logical_cpus": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "tensorflow": tf.__version__,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }


def _median_epoch_seconds(model, dataset, epochs: int) -> float:
    import keras

    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    model.fit(dataset, epochs=epochs + 1, verbose=0, callbacks=[Timer()], shuffle=False)
    return float(np.median(times[1:]))  # the first epoch traces the graph


def run_benchmark(model_name: str = "seed_cae", image_size: int = _RECIPE.image_size, n_images: int = 128,
                  batch_size: int = _RECIPE.batch_size, epochs: int = 3, latency_runs: int = 50,
                  precision: str = RuntimeConfig().precision, jit_compile: str = "off") -> dict:
    """Measures one model. Uses synthetic bottles, so it needs no dataset on disk.

    Args:
        precision: a Keras dtype policy ('float32', 'mixed_bfloat16', 'mixed_float16').
        jit_compile: 'on' compiles the training and inference steps with XLA.
    """
    import keras
    import tensorflow as tf

    spec = models.get_spec(model_name)
    synth = SynthConfig(image_size=image_size)
    images = np.stack([make_sample(synth, "train", i)[0] for i in range(n_images)])
    model = models.build_model(model_name, image_size, precision)
    flops = forward_flops(model)
    jit = {"auto": "auto", "on": True, "off": False}[jit_compile]
    result = {"model": model_name, "image_size": image_size, "batch_size": batch_size, "n_images": n_images,
              "precision": precision, "jit_compile": jit_compile,
              "parameters": int(model.count_params()), "forward_gflop_per_image": flops / 1e9}

    if not spec.fitted_in_one_pass:
        trainable = spec.training_model(model)
        trainable.compile(optimizer=keras.optimizers.Adam(_RECIPE.learning_rate), loss=spec.loss_function(),
                          jit_compile=jit)
        pipeline = spec.make_dataset(images, batch_size, training=True, seed=0)
        # the same batches, made once and replayed from memory: no augmentation, no synthesis
        in_memory = tf.data.Dataset.from_tensor_slices(list(pipeline.unbatch().batch(n_images).take(1))[0])
        in_memory = in_memory.batch(batch_size).cache()
        pipeline_s = _median_epoch_seconds(trainable, pipeline, epochs)
        memory_s = _median_epoch_seconds(trainable, in_memory, epochs)
        result.update(
            train_images_per_s_pipeline=n_images / pipeline_s,
            train_images_per_s_in_memory=n_images / memory_s,
            pipeline_overhead=pipeline_s / memory_s - 1.0,
            # a training step costs about 3 forward passes (forward, and backward for inputs and weights)
            train_gflop_per_s=3 * flops * n_images / memory_s / 1e9,
        )

    batch = images[:batch_size]
    model.predict_on_batch(batch)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        model.predict_on_batch(batch)
        timings.append(time.perf_counter() - started)
    infer_s = float(np.median(timings))
    single = images[:1]
    model.predict_on_batch(single)
    latencies = []
    for _ in range(latency_runs):
        started = time.perf_counter()
        model.predict_on_batch(single)
        latencies.append(time.perf_counter() - started)
    result.update(
        inference_images_per_s_batch32=batch_size / infer_s,
        inference_gflop_per_s=flops * batch_size / infer_s / 1e9,
        latency_ms_p50_batch1=1e3 * float(np.percentile(latencies, 50)),
        latency_ms_p99_batch1=1e3 * float(np.percentile(latencies, 99)),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        machine=machine(),
    )
    return result


def exported_latency(run_dir, formats=("savedmodel", "tflite", "tflite-int8", "onnx"), images: int = 8,
                     repeats: int = 30) -> dict:
    """Exports a run in each format, then measures batch-1 latency and the largest map difference
    from the run's detector on the same uint8 images (`images` of the run's training normals)."""
    import tempfile
    from pathlib import Path

    import tensorflow as tf

    from cae_keras import data, export
    from cae_keras.runs import Run

    run = Run(run_dir)
    config, model = run.config, run.model
    category = data.category_of(config)
    pixels = np.round(data.load_images(category.train[:images], config.recipe.image_size) * 255).astype(np.uint8)
    reference = {k: v.numpy() for k, v in run.detector.detect(tf.constant(pixels)).items()}
    keras_latency = []
    for i in range(repeats):
        started = time.perf_counter()
        model.predict_on_batch(pixels[i % images][None] / np.float32(255))
        keras_latency.append(time.perf_counter() - started)
    result = {"keras": {"latency_ms_p50_batch1": 1e3 * float(np.median(keras_latency[1:]))}}
    with tempfile.TemporaryDirectory() as scratch:
        for fmt in formats:
            detector = export.ExportedDetector(export.export_run(run, fmt, Path(scratch) / f"model_{fmt}"))
            outputs = detector(pixels)
            latencies = []
            for i in range(repeats):
                started = time.perf_counter()
                detector(pixels[i % images][None])
                latencies.append(time.perf_counter() - started)
            result[fmt] = {
                "latency_ms_p50_batch1": 1e3 * float(np.median(latencies[1:])),
                "latency_ms_p99_batch1": 1e3 * float(np.percentile(latencies[1:], 99)),
                "max_map_difference": float(np.abs(outputs["anomaly_map"] - reference["anomaly_map"]).max()),
                "max_score_difference": float(np.abs(outputs["score"] - reference["score"]).max()),
            }
    return result
