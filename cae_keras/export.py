"""Exporting a trained run for the line: raw uint8 images in, anomaly map, score and decision out.

The export is the run's detector (`cae_keras.detector`), the graph every command runs: scaling to
[0, 1], resizing, the model, the run's error map, the Gaussian blur, the image score, the
threshold, resizing the map back. A deployment re-implements nothing, and every map and image
score a run can use is exported.

Every format takes `[N, H, W, 3] uint8` RGB images of any size (TFLite: one image per call), resizes
them inside exactly as the reader does (`cae_keras.resizing`: area averaging when shrinking,
OpenCV's bicubic otherwise), and returns the anomaly map at the input's own size.

- `savedmodel`: TensorFlow SavedModel.
- `tflite`: TensorFlow Lite, float32 weights.
- `tflite-int8`: the same with the network's weights and activations quantized to int8
  (calibrated on the run's training normals with and without synthetic anomalies); resizing,
  map, blur, score and threshold stay float, so a defect's large errors are not clipped. The
  export compares its decisions with the float model's on validation normals and synthetic
  anomalies, warns if any differ, and writes the figures to `<model>.json` (`int8_check`).
- `onnx`: ONNX through tf2onnx (an optional dependency).

Outputs, by name: `anomaly_map [N, H, W] float32`, `score [N] float32`, `defective [N] bool`.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np

from cae_keras import data
from cae_keras.errors import ConfigError
from cae_keras.files import write_atomic, write_text_atomic
from cae_keras.quiet import native_noise_silenced
from cae_keras.runs import Run, as_run

FORMATS = ("savedmodel", "tflite", "tflite-int8", "onnx")


def export_run(run: Run | Path, fmt: str, out: Path) -> Path:
    """Exports a run's model in `fmt` to `out`; writes `<out>.json` beside it with how to call it.

    Raises:
        ConfigError: an unknown format, ONNX without tf2onnx installed, or int8 for a model fitted
            in one pass (pixel_stats, patch_nn).
    """
    import tensorflow as tf

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    run = as_run(run)
    paths, config, threshold = run.paths, run.config, run.threshold
    if fmt == "tflite-int8" and run.spec.fitted_in_one_pass:
        raise ConfigError(f"{paths.root}: {config.recipe.model} has no trained network to quantize; int8 would "
                          "quantize its own statistics or distances (tried on patch_nn: half the check decisions "
                          "flipped). Use --format tflite")
    module = run.detector
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    signatures = {"serving_default": module.detect}
    if fmt == "savedmodel":
        tf.saved_model.save(module, str(out), signatures=signatures)
    else:  # TFLite and tf2onnx convert from a SavedModel, which freezes the weights into the graph
        with tempfile.TemporaryDirectory() as scratch:
            tf.saved_model.save(module, scratch, signatures=signatures)
            if fmt.startswith("tflite"):
                from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

                # Weights frozen into constants: TFLite's resource-variable path leaves them unread.
                frozen = convert_variables_to_constants_v2(module.detect.get_concrete_function(
                    tf.TensorSpec([1, None, None, 3], tf.uint8, name="images")))
                converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
                with native_noise_silenced():
                    if fmt == "tflite-int8":
                        content = _quantize_network_only(converter, module.model.name, _representative(config))
                    else:
                        content = converter.convert()
                write_atomic(out, lambda tmp: tmp.write_bytes(content))
            else:
                write_atomic(out, lambda tmp: _export_onnx(scratch, tmp))
    scoring = config.scoring
    meta = {"format": fmt, "model": config.recipe.model, "image_size": config.recipe.image_size,
            "threshold": threshold, "blur_sigma": scoring.blur_sigma,
            "anomaly_map": scoring.anomaly_map if run.spec.reconstructs else "the model's own map",
            "image_score": scoring.image_score,
            "input": "[N, H, W, 3] uint8 images, RGB, any size",
            "outputs": ["anomaly_map", "score", "defective"], "run": str(paths.root)}
    meta_path = Path(str(out) + ".json")
    write_text_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
    if fmt == "tflite-int8":  # the figures travel with the model
        meta["int8_check"] = check_int8(out, run)
        write_text_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
    return out


def _uint8(images: np.ndarray) -> np.ndarray:
    return np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)


def with_synthetic_anomalies(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each of `[N, S, S, 3]` float images (N >= 2) with a synthetic anomaly of `cae_keras.anomalies`
    (another image's content or a colour pasted through a smooth random mask): `[N, S, S, 3]`."""
    import tensorflow as tf

    from cae_keras import anomalies

    result, pending = images.copy(), np.arange(len(images))
    for attempt in range(32):  # the generator leaves about half the images clean each time
        augmented, mask = anomalies.synthesize(tf.constant(images), tf.constant(seed + attempt, tf.int64))
        hit = np.asarray(mask).reshape(len(images), -1).max(axis=1) > 0
        done = pending[hit[pending]]
        result[done] = np.asarray(augmented)[done]
        pending = pending[~hit[pending]]
        if not len(pending):
            break
    return result


def _with_anomalies_uint8(normals: np.ndarray, seed: int, limit: int = 32) -> np.ndarray:
    """Up to `limit` normals and the same with synthetic anomalies, as uint8 (the exports' input)."""
    normals = normals[:limit]
    if len(normals) < 2:
        return _uint8(normals)
    return _uint8(np.concatenate([normals, with_synthetic_anomalies(normals, seed)]))


def _representative(config, limit: int = 32):
    """Calibration inputs for int8 quantization: training normals with and without synthetic
    anomalies (normals alone leave a defect's large errors outside the quantized ranges), at the
    model's size and, resized, larger, smaller and not square (the resize inside is calibrated too)."""
    train, _, _ = data.validation_split(data.category_of(config), config.dataset.val_fraction, config.recipe.seed)
    images = _with_anomalies_uint8(data.load_images(train[:limit], config.recipe.image_size), config.recipe.seed, limit)
    size = config.recipe.image_size

    def inputs():
        for i, image in enumerate(images):
            yield [image[None]]
            if i % 4 == 0:
                for height, width in ((2 * size, 3 * size // 2), (size // 2 + 3, size)):
                    resized = data.resize_to(image.astype(np.float32) / 255, height, width)
                    yield [_uint8(resized)[None]]

    return inputs


def _quantize_network_only(converter, network: str, representative) -> bytes:
    """Int8 weights and activations inside the network (the ops under its name scope), float
    everywhere else: the resizes, the error map, the blur, the score and the threshold. Calibrated
    on normals alone, a quantized error map clips a defect's large errors (issue 10: defect scores
    halved, 2 of 5 defective images called good); these steps are cheap in float anyway."""
    import tensorflow as tf

    import tensorflow.lite.experimental as lite_experimental

    inside = re.compile(rf"(^|;){re.escape(network)}(_\d+)?/")  # Keras numbers a reused scope: seed_cae_1/
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    outside = sorted({detail["name"] for detail in interpreter.get_tensor_details()
                      if not inside.search(detail["name"])})
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    debugger = lite_experimental.QuantizationDebugger(
        converter=converter, debug_dataset=representative,
        debug_options=lite_experimental.QuantizationDebugOptions(denylisted_nodes=outside))
    return debugger.get_nondebug_quantized_model()


class Int8DecisionsDiffer(UserWarning):
    """The int8 model decides some check images differently from the float model."""


def check_int8(path: Path, run: Run | Path) -> dict:
    """Compares an int8 export's decisions with the float model's on the run's validation normals
    and the same with synthetic anomalies; warns (`Int8DecisionsDiffer`) if any decision differs.
    The float reference is the run's own detector, which `export_run` has already built.

    Returns:
        images, anomalous (how many carry a synthetic anomaly), decisions_flipped,
        max_score_difference (in the score's units), threshold.
    """
    import warnings

    import tensorflow as tf

    run = as_run(run)
    config = run.config
    images = _with_anomalies_uint8(run.validation_images, config.recipe.seed)  # decoded once per Run
    reference = {k: v.numpy() for k, v in run.detector.detect(tf.constant(images)).items()}
    quantized = ExportedDetector(path)(images)
    flipped = int((reference["defective"] != quantized["defective"]).sum())
    figures = {"images": len(images), "anomalous": len(images) // 2 if len(images) > 1 else 0,
               "decisions_flipped": flipped,
               "max_score_difference": float(np.abs(reference["score"] - quantized["score"]).max()),
               "threshold": run.threshold}
    if flipped:
        warnings.warn(
            f"{path}: the int8 model decides {flipped} of {figures['images']} check images (validation normals "
            f"and the same with synthetic anomalies) differently from the float model; scores differ by up to "
            f"{figures['max_score_difference']:.3g} (threshold {figures['threshold']:.3g}). Prefer --format "
            "tflite, or check these decisions on your own images.", Int8DecisionsDiffer, stacklevel=2)
    return figures


def _export_onnx(saved_model: str, out: Path) -> None:
    """Converts the SavedModel's fixed-size signature with tf2onnx (an optional dependency)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("tf2onnx") is None:
        raise ConfigError("ONNX export needs tf2onnx and onnxruntime: pip install tf2onnx onnxruntime")
    result = subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved_model, "--signature_def", "serving_default",
         "--opset", "17", "--output", str(out)], capture_output=True, text=True)
    if result.returncode != 0:
        raise ConfigError(f"tf2onnx could not convert the model:\n{result.stderr[-2000:]}")


class ExportedDetector:
    """Runs an exported model (SavedModel folder, `.tflite` or `.onnx` file) like a run folder.

    Call it with `[N, H, W, 3] uint8` images of any one size; it returns the outputs as numpy
    arrays: `anomaly_map [N, H, W] float32`, `score [N] float32`, `defective [N] bool`.
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

            with native_noise_silenced():
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
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ConfigError(f"exported model takes [N, H, W, 3] uint8 images, got {images.shape} {images.dtype}")
        return self._call(images)


def _tflite_batches(interpreter, images: np.ndarray) -> dict[str, np.ndarray]:
    """TFLite models take one image: runs them one by one and stacks the outputs.

    The input's height and width are set to the images' own before the first one. The frozen graph
    names its outputs Identity, Identity_1, ...: they are told apart by rank and type.
    """
    source = interpreter.get_input_details()[0]["index"]
    if tuple(interpreter.get_input_details()[0]["shape"]) != (1, *images.shape[1:]):
        with native_noise_silenced():
            interpreter.resize_tensor_input(source, [1, *images.shape[1:]])
            interpreter.allocate_tensors()
    outputs: dict[str, list] = {"anomaly_map": [], "score": [], "defective": []}
    for image in images:
        interpreter.set_tensor(source, image[None])
        with native_noise_silenced():  # the first call creates the XNNPACK delegate, with a line about it
            interpreter.invoke()
        for detail in interpreter.get_output_details():
            value = interpreter.get_tensor(detail["index"])
            key = "defective" if value.dtype == np.bool_ else ("anomaly_map" if value.ndim == 3 else "score")
            outputs[key].append(value)
    return {key: np.concatenate(values) for key, values in outputs.items()}
