"""Exporting a trained run for the line: raw uint8 images in, anomaly map, score and decision out.

The exported graph holds the whole path (scaling to [0, 1], resizing, the model, |x - x̂|, the
Gaussian blur, the maximum, the threshold), so a deployment re-implements nothing.

- `savedmodel`: TensorFlow SavedModel; input `[N, H, W, 3] uint8` of any size (resized inside:
  area averaging when shrinking, bicubic when growing, like the reader).
- `tflite`: TensorFlow Lite, float32 weights; input `[1, S, S, 3] uint8` at the model's size.
- `tflite-int8`: the same, weights and activations quantized to int8 where TFLite can (calibrated
  on the run's training images), float elsewhere.
- `onnx`: ONNX through tf2onnx (an optional dependency); input `[N, S, S, 3] uint8`.

Outputs, by name: `anomaly_map [N, S, S] float32`, `score [N] float32`, `defective [N] bool`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from cae_keras import data, models, scoring
from cae_keras.errors import ConfigError
from cae_keras.files import write_atomic, write_text_atomic
from cae_keras.runs import open_run, read_calibration

FORMATS = ("savedmodel", "tflite", "tflite-int8", "onnx")


def gaussian_kernel(sigma: float) -> np.ndarray:
    """The 1-D kernel OpenCV's GaussianBlur uses on float32 images for this sigma."""
    import cv2

    size = int(round(sigma * 8 + 1)) | 1
    return cv2.getGaussianKernel(size, sigma, cv2.CV_32F).ravel().astype(np.float32)


def _detector_module(model, output: str, image_size: int, blur_sigma: float, threshold: float):
    """A `tf.Module` whose `detect(images)` runs the whole path from uint8 images to decisions."""
    import tensorflow as tf

    kernel = gaussian_kernel(blur_sigma) if blur_sigma > 0 else np.ones(1, np.float32)
    pad = len(kernel) // 2

    class Detector(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.kernel_rows = tf.constant(kernel.reshape(-1, 1, 1, 1))
            self.kernel_cols = tf.constant(kernel.reshape(1, -1, 1, 1))
            self.threshold = tf.constant(threshold, tf.float32)

        def blur(self, maps):
            x = maps[..., None]
            if pad:  # OpenCV's default border (reflect-101) is TensorFlow's REFLECT
                x = tf.pad(x, [[0, 0], [pad, pad], [0, 0], [0, 0]], mode="REFLECT")
                x = tf.nn.conv2d(x, self.kernel_rows, 1, "VALID")
                x = tf.pad(x, [[0, 0], [0, 0], [pad, pad], [0, 0]], mode="REFLECT")
                x = tf.nn.conv2d(x, self.kernel_cols, 1, "VALID")
            return x[..., 0]

        def run(self, images, resize: bool):
            x = tf.cast(images, tf.float32) / 255.0
            if resize:
                shrink = tf.shape(x)[1] >= image_size
                x = tf.cond(
                    tf.reduce_all(tf.shape(x)[1:3] == image_size), lambda: x,
                    lambda: tf.cond(shrink, lambda: tf.image.resize(x, [image_size, image_size], "area"),
                                    lambda: tf.clip_by_value(tf.image.resize(
                                        x, [image_size, image_size], "bicubic"), 0.0, 1.0)))
            y = self.model(x, training=False)
            raw = tf.reduce_mean(tf.abs(x - y), axis=-1) if output == "reconstruction" else y
            maps = self.blur(tf.cast(raw, tf.float32))
            scores = tf.reduce_max(maps, axis=[1, 2])
            return {"anomaly_map": maps, "score": scores, "defective": scores > self.threshold}

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
        def detect(self, images):
            return self.run(images, resize=True)

        @tf.function(input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.uint8, name="images")])
        def detect_fixed(self, images):
            return self.run(images, resize=False)

    return Detector()


def export_run(run_dir: Path, fmt: str, out: Path) -> Path:
    """Exports a run's model in `fmt` to `out`; writes `<out>.json` beside it with how to call it.

    Raises:
        ConfigError: an unknown format, or ONNX without tf2onnx installed.
    """
    import tensorflow as tf

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    paths, config = open_run(run_dir)
    spec = models.get_spec(config.model)
    if not scoring.ScoringMethod.of(config).is_default:
        raise ConfigError(f"{run_dir}: exported models compute the L1 map and its maximum; this run scores with "
                          f"{config.anomaly_map!r} / {config.image_score!r}. Use `cae-keras predict --run` instead")
    threshold = float(read_calibration(paths)["threshold"])
    module = _detector_module(models.load_model(paths.model), spec.output, config.image_size,
                              config.blur_sigma, threshold)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    signatures = {"serving_default": module.detect, "serving_fixed": module.detect_fixed}
    if fmt == "savedmodel":
        tf.saved_model.save(module, str(out), signatures=signatures)
    else:  # TFLite and tf2onnx convert from a SavedModel, which freezes the weights into the graph
        with tempfile.TemporaryDirectory() as scratch:
            tf.saved_model.save(module, scratch, signatures=signatures)
            if fmt.startswith("tflite"):
                from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

                # Weights frozen into constants: TFLite's resource-variable path leaves them unread.
                frozen = convert_variables_to_constants_v2(module.detect_fixed.get_concrete_function(
                    tf.TensorSpec([1, config.image_size, config.image_size, 3], tf.uint8, name="images")))
                converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
                if fmt == "tflite-int8":
                    converter.optimizations = [tf.lite.Optimize.DEFAULT]
                    converter.representative_dataset = _representative(config)
                write_atomic(out, lambda tmp: tmp.write_bytes(converter.convert()))
            else:
                write_atomic(out, lambda tmp: _export_onnx(scratch, tmp))
    meta = {"format": fmt, "model": config.model, "image_size": config.image_size, "threshold": threshold,
            "blur_sigma": config.blur_sigma, "input": "uint8 images, RGB",
            "outputs": ["anomaly_map", "score", "defective"], "run": str(paths.root)}
    write_text_atomic(Path(str(out) + ".json"), json.dumps(meta, indent=2) + "\n")
    return out


def _representative(config, limit: int = 64):
    """Calibration images for int8 quantization: the run's training normals."""
    train, _, _ = data.validation_split(data.category_of(config), config.val_fraction, config.seed)

    def images():
        for path in train[:limit]:
            pixels = np.round(data.load_image(path, config.image_size) * 255).astype(np.uint8)
            yield [pixels[None]]

    return images


def _export_onnx(saved_model: str, out: Path) -> None:
    """Converts the SavedModel's fixed-size signature with tf2onnx (an optional dependency)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("tf2onnx") is None:
        raise ConfigError("ONNX export needs tf2onnx and onnxruntime: pip install tf2onnx onnxruntime")
    result = subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved_model, "--signature_def", "serving_fixed",
         "--opset", "17", "--output", str(out)], capture_output=True, text=True)
    if result.returncode != 0:
        raise ConfigError(f"tf2onnx could not convert the model:\n{result.stderr[-2000:]}")


class ExportedDetector:
    """Runs an exported model (SavedModel folder, `.tflite` or `.onnx` file) like a run folder.

    Call it with `[N, S, S, 3] uint8` images; it returns the outputs as numpy arrays.
    """

    def __init__(self, path: Path):
        path = Path(path)
        meta_path = Path(str(path) + ".json")
        if not meta_path.is_file():
            raise ConfigError(f"{meta_path}: missing; export the model with `cae-keras export`")
        self.meta = json.loads(meta_path.read_text())
        self.image_size = int(self.meta["image_size"])
        self.threshold = float(self.meta["threshold"])
        fmt = self.meta["format"]
        if fmt == "savedmodel":
            import tensorflow as tf

            self._run = tf.saved_model.load(str(path)).signatures["serving_default"]
            self._call = lambda x: {k: v.numpy() for k, v in self._run(images=tf.constant(x)).items()}
        elif fmt.startswith("tflite"):
            import tensorflow as tf

            interpreter = tf.lite.Interpreter(model_path=str(path))
            interpreter.allocate_tensors()
            self._call = lambda x: _tflite_batches(interpreter, x)
        else:
            import onnxruntime

            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            feed = session.get_inputs()[0].name
            self._call = lambda x: dict(zip(names, session.run(names, {feed: x})))

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if images.dtype != np.uint8 or images.shape[1:] != (self.image_size, self.image_size, 3):
            raise ConfigError(f"exported model takes [N, {self.image_size}, {self.image_size}, 3] uint8 images, "
                              f"got {images.shape} {images.dtype}")
        return self._call(images)


def _tflite_batches(interpreter, images: np.ndarray) -> dict[str, np.ndarray]:
    """TFLite models take one image: runs them one by one and stacks the outputs.

    The frozen graph names its outputs Identity, Identity_1, ...: they are told apart by rank and type.
    """
    source = interpreter.get_input_details()[0]["index"]
    outputs: dict[str, list] = {"anomaly_map": [], "score": [], "defective": []}
    for image in images:
        interpreter.set_tensor(source, image[None])
        interpreter.invoke()
        for detail in interpreter.get_output_details():
            value = interpreter.get_tensor(detail["index"])
            key = "defective" if value.dtype == np.bool_ else ("anomaly_map" if value.ndim == 3 else "score")
            outputs[key].append(value)
    return {key: np.concatenate(values) for key, values in outputs.items()}
