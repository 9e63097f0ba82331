"""The notebooks' cache keys and fast mode."""

from __future__ import annotations

from cae_keras import workshop
from cae_keras.config import TrainConfig


def test_cache_key_ignores_fields_left_at_their_defaults():
    defaults = workshop._field_defaults(TrainConfig)
    config = TrainConfig(data="d", category="c", model="seed_cae", epochs=3)
    without_new_fields = {k: v for k, v in config.to_dict().items() if k not in ("precision", "jit_compile")}
    # a field added later with its default does not move cached runs
    assert workshop._digest(config.to_dict(), defaults) == workshop._digest(without_new_fields, defaults)
    assert workshop._digest(config.to_dict(), defaults) != workshop._digest(
        TrainConfig(data="d", category="c", model="seed_cae", epochs=4).to_dict(), defaults)


def test_fast_mode_flag(monkeypatch):
    for value, expected in (("1", True), ("true", True), ("0", False), ("", False), ("false", False)):
        monkeypatch.setenv("CAE_KERAS_FAST", value)
        assert workshop.fast_mode() is expected
