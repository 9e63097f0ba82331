"""tf.distribute training on CPU with two logical devices, and training every category of a root."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from cae_keras.cli import main

MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from cae_keras import distribution, models
    distribution.split_cpu(2)
    from cae_keras.config import TrainConfig
    from cae_keras.synth import SynthConfig, write_dataset
    from cae_keras.training import train

    root = sys.argv[1]
    out = {}
    # 36 images: 4 held out, 32 = 4 batches of 8, so both runs see the same batches
    write_dataset(root + "/even", "bottle", SynthConfig(image_size=32, n_train=36, n_test_good=1, n_per_defect=1),
                  progress=False)
    weights = {}
    for strategy in ("none", "mirrored"):
        config = TrainConfig(data=root + "/even", category="bottle", model="seed_cae", image_size=32, epochs=2,
                             batch_size=8, augment=False)
        paths = train(config, f"{root}/{strategy}", verbose=0, strategy=strategy)
        weights[strategy] = models.load_model(paths.model).get_weights()
    out["max_weight_difference"] = max(float(np.abs(a - b).max()) for a, b in zip(*weights.values()))
    out["max_weight"] = max(float(np.abs(a).max()) for a in weights["none"])
    # 34 images: 3 held out, 31 to train: uneven batches must still split over the replicas
    write_dataset(root + "/odd", "bottle", SynthConfig(image_size=32, n_train=34, n_test_good=1, n_per_defect=1),
                  progress=False)
    config = TrainConfig(data=root + "/odd", category="bottle", model="seed_cae", image_size=32, epochs=1, batch_size=8)
    out["uneven_ok"] = train(config, root + "/odd_run", verbose=0, strategy="mirrored").model.is_file()
    print(json.dumps(out))
""")


def test_mirrored_on_two_cpu_devices_matches_one_device(tmp_path):
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # same data, same initial weights; only the order of floating-point sums differs
    assert out["max_weight_difference"] < 0.02 * out["max_weight"]
    assert out["uneven_ok"]


def test_multi_worker_trains_alone_without_tf_config(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "cae_keras", "train", "--data", str(tiny_dataset), "--category", "bottle",
         "--model", "seed_cae", "--run", str(run), "--epochs", "1", "--image-size", "32", "--batch-size", "8",
         "--strategy", "multi-worker"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "model.keras").is_file()


def test_all_categories(tmp_path):
    from cae_keras.synth import SynthConfig, write_dataset

    small = SynthConfig(image_size=32, n_train=6, n_test_good=1, n_per_defect=1)
    for name in ("bottle", "cap"):
        write_dataset(tmp_path / "data", name, small, progress=False)
    assert main(["train", "--data", str(tmp_path / "data"), "--all-categories", "--model", "pixel_stats",
                 "--run", str(tmp_path / "runs"), "--image-size", "32"]) == 0
    for name in ("bottle", "cap"):
        assert json.loads((tmp_path / "runs" / name / "config.json").read_text())["dataset"]["category"] == name
    assert main(["train", "--data", str(tmp_path / "data"), "--model", "pixel_stats", "--run", str(tmp_path / "r")]) == 2
