"""One command for a GPU machine: `python -m cae_keras.gpu_check --out gpu_check.json`.

Runs the benchmark of `seed_cae` at 256 px in float32, with XLA, and with mixed float16 + XLA,
then trains a small run on the synthetic bottle, exports it and checks the exported maps against
the Keras model's (the parity test), and writes everything as one JSON file.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from cae_keras.bench import exported_latency, machine, run_benchmark
from cae_keras.config import RecipeConfig, TrainConfig
from cae_keras.files import write_text_atomic
from cae_keras.synth import SynthConfig, write_dataset
from cae_keras.training import train

SETTINGS = (("float32", "off"), ("float32", "on"), ("mixed_float16", "on"))


def gpu_check(image_size: int = RecipeConfig().image_size, n_images: int = 256) -> dict:
    result = {"machine": machine(), "benchmarks": []}
    for precision, jit in SETTINGS:
        result["benchmarks"].append(run_benchmark("seed_cae", image_size, n_images=n_images, precision=precision,
                                                  jit_compile=jit))
    with tempfile.TemporaryDirectory() as scratch:
        write_dataset(Path(scratch) / "data", "bottle", SynthConfig(image_size=64, n_train=40, n_test_good=2,
                                                                    n_per_defect=2), progress=False)
        config = TrainConfig(data=str(Path(scratch) / "data"), category="bottle", image_size=64, epochs=2,
                             batch_size=16)
        run = train(config, Path(scratch) / "run", verbose=0)
        result["export_parity"] = exported_latency(run.root, formats=("savedmodel", "tflite"))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args(argv)
    result = gpu_check()
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
