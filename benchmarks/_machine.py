"""What every benchmark prints first: the machine its ratios were measured on.

The machines this project runs on differ in kind (AMD EPYC with AVX-512; Intel Xeon with
AVX512-BF16 and AMX), and a ratio holds only for the kind it was measured on.
"""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (Linux), else what the platform module says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_flags() -> list[str]:
    """The CPU's AVX-512 and AMX flags (and AVX2/FMA), sorted; empty where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(
                        f for f in flags
                        if f.startswith(("avx512", "amx")) or f in ("avx2", "fma")
                    )
    except OSError:
        pass
    return []


def describe_machine() -> str:
    """One line: CPU model, cores, flags, TensorFlow and Keras versions, GPU or not."""
    import keras
    import tensorflow as tf

    gpu = bool(tf.config.list_logical_devices("GPU"))
    return (
        f"CPU: {cpu_model()}, {os.cpu_count()} cores; flags: {' '.join(cpu_flags()) or 'none'}"
        f"\nTensorFlow {tf.__version__}, Keras {keras.__version__}, GPU: {gpu}"
    )
