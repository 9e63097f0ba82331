"""Keeping TensorFlow's start-up lines out of the package's own output.

TensorFlow's C++ core writes to the process's stderr before any Python logging setting applies
(oneDNN notes, CUDA driver lookups, and on a CPU-only machine an `E0000 ... failed call to cuInit`
line that reads like a failure). `TF_CPP_MIN_LOG_LEVEL` silences only the later ones, so the import
runs with file descriptor 2 pointed at /dev/null; Python exceptions still surface afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    """Points file descriptor 2 at /dev/null for the block (C++ libraries write to it directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_quiet = False


@contextlib.contextmanager
def native_noise_silenced():
    """Silences the C++ lines of a TensorFlow Lite conversion or interpreter (`fully_quantize: 0 ...`,
    `INFO: Created TensorFlow Lite XNNPACK delegate`) once `quiet_tensorflow` has run, not with -v."""
    if not _quiet:
        yield
        return
    with native_stderr_silenced():
        yield


def quiet_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow and Keras without their start-up lines; `verbose` keeps every line."""
    global _quiet
    if verbose:
        return
    _quiet = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    # TensorFlow 2.20+ announces tf.lite.Interpreter's move to LiteRT on every use: not the user's concern
    warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated", category=UserWarning)
    if "tensorflow" in sys.modules:
        return
    with native_stderr_silenced():
        import keras  # noqa: F401  (keras loads TensorFlow's native libraries too)
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe happens here, once
    tf.get_logger().setLevel("ERROR")  # retracing and deprecation notes
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; nothing to quiet without it
        pass
