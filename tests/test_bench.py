"""The benchmark's arithmetic and its report (its figures are measured, never asserted)."""

from __future__ import annotations

from cae_keras import bench


def test_flops_are_counted_by_hand():
    import keras

    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)  # 4x4x4 out: 2*9*2*4*16 = 2304
    x = keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same")(x)  # 4x4 in: 2*9*4*3*16 = 3456
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5)(x)  # 2*192*5 = 1920
    assert bench.forward_flops(keras.Model(inputs, x)) == 2304 + 3456 + 1920


def test_seed_cae_costs_what_the_issue_measured():
    from cae_keras import models

    assert abs(bench.forward_flops(models.build_model("seed_cae", 256)) / 1e9 - 0.69) < 0.01


def test_report_holds_every_figure():
    result = bench.run_benchmark("seed_cae", image_size=32, n_images=16, batch_size=8, epochs=1, latency_runs=3)
    for key in ("train_images_per_s_pipeline", "train_images_per_s_in_memory", "pipeline_overhead",
                "inference_images_per_s_batch32", "latency_ms_p50_batch1", "latency_ms_p99_batch1",
                "peak_rss_mb", "forward_gflop_per_image", "train_gflop_per_s", "machine"):
        assert key in result
    assert result["train_images_per_s_pipeline"] > 0 and result["latency_ms_p99_batch1"] >= result[
        "latency_ms_p50_batch1"]


def test_exported_latency_reports_every_format(tiny_dataset, tmp_path):
    from cae_keras.config import TrainConfig
    from cae_keras.training import train

    run = train(TrainConfig(data=str(tiny_dataset), category="bottle", model="seed_cae", image_size=32, epochs=1,
                            batch_size=8),
                tmp_path / "run", verbose=0)
    result = bench.exported_latency(run.root, formats=("savedmodel", "tflite-int8"), images=4, repeats=3)
    assert set(result) == {"keras", "savedmodel", "tflite-int8"}
    assert result["savedmodel"]["max_map_difference"] < 1e-4
