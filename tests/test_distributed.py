"""AllegianceEvaluator under tf.distribute: MirroredStrategy over two logical CPUs and
MultiWorkerMirroredStrategy over two local worker processes give the single-device result,
and the replicas' batches are checked as the single-device path checks them.

Both run in fresh processes: logical devices and TF_CONFIG must be set before TensorFlow
initialises its runtime, which the test process has long done.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import small_conv_net
from tf_signsal.evaluation import ALL_PAIRS, AllegianceEvaluator

pytestmark = pytest.mark.slow  # multi-worker training in subprocesses

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
TIMEOUT_S = 180

# Shared by every process: the same seeded model, images and pairs. 21 images in
# batches of 8 leave a short last batch, split unevenly between the replicas.
SETUP = textwrap.dedent(f"""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.path[:0] = [{ROOT!r}, {TESTS!r}]
    import numpy as np
    import tensorflow as tf
    from conftest import small_conv_net
    from tf_signsal.evaluation import ALL_PAIRS, AllegianceEvaluator

    def evaluator():
        return AllegianceEvaluator(small_conv_net(), pairs=ALL_PAIRS + (("random", "black"),),
                                   batch_size=8)

    images = np.random.default_rng(0).random((21, 8, 8, 3), dtype=np.float32)
    labels = np.arange(21) % 5
""")

MIRRORED = SETUP + textwrap.dedent("""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print("STRATEGY_READY", strategy.num_replicas_in_sync, flush=True)
    ev = evaluator()
    single = ev.evaluate((images, labels), verbose=0)
    mirrored = ev.evaluate((images, labels), verbose=0, strategy=strategy)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(6)
    from_dataset = ev.evaluate(dataset, verbose=0, strategy=strategy)
    # Batches of two image sizes for a model of any size: the replicas' shares get the
    # one-image-size check of the single-device path.
    from conftest import any_size_model
    sizes = tf.data.Dataset.from_tensor_slices(images[:4]).batch(4).concatenate(
        tf.data.Dataset.from_tensor_slices(np.zeros((4, 6, 6, 3), np.float32)).batch(4))
    try:
        AllegianceEvaluator(any_size_model()).evaluate(sizes, verbose=0, strategy=strategy)
        print("SIZES accepted")
    except ValueError as error:
        print("SIZES", error)
    print("RESULT", json.dumps([single.to_dict(), mirrored.to_dict(), from_dataset.to_dict()]))
""")

WORKER = SETUP + textwrap.dedent("""
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    print("STRATEGY_READY", strategy.num_replicas_in_sync, flush=True)
    result = evaluator().evaluate((images, labels), verbose=0, strategy=strategy)
    print("RESULT", json.dumps(result.to_dict()), flush=True)
""")


def single_result():
    return AllegianceEvaluator(
        small_conv_net(), pairs=ALL_PAIRS + (("random", "black"),), batch_size=8
    ).evaluate((np.random.default_rng(0).random((21, 8, 8, 3), dtype=np.float32),
                np.arange(21) % 5), verbose=0)


def parse(output):
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT "):]) if lines else None


def check_finished(outputs, returncodes, what):
    """Skip when the distributed runtime never came up here; fail on anything later."""
    if not all("STRATEGY_READY" in out for out in outputs):
        pytest.skip(f"{what} could not start on this machine: {outputs[0][-500:]}")
    if any(code != 0 for code in returncodes) or any(parse(out) is None for out in outputs):
        pytest.fail(f"{what} failed after starting (codes {returncodes}):\n" + "\n".join(
            out[-3000:] for out in outputs))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_mirrored_strategy_two_logical_cpus():
    try:
        run = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                             timeout=TIMEOUT_S, cwd=ROOT)
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b"").decode() if isinstance(error.stdout, bytes) else (
            error.stdout or "")
        check_finished([output], [None], "MirroredStrategy")
        raise
    output = run.stdout + run.stderr
    check_finished([output], [run.returncode], "MirroredStrategy")
    single, mirrored, from_dataset = parse(output)
    assert "STRATEGY_READY 2" in output
    assert single["n_images"] == 21
    assert mirrored == single
    assert from_dataset == single
    assert "SIZES `data` batches must share one image shape, the first had (8, 8, 3), a later " \
        "one (6, 6, 3)" in output


def test_multi_worker_mirrored_strategy_two_processes():
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen(
            [sys.executable, "-c", WORKER], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env, cwd=ROOT))
    outputs, codes = [], []
    for worker in workers:
        try:
            out, _ = worker.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            out, _ = worker.communicate()
        outputs.append(out)
        codes.append(worker.returncode)
    check_finished(outputs, codes, "MultiWorkerMirroredStrategy")
    assert all("STRATEGY_READY 2" in out for out in outputs)
    expected = single_result().to_dict()
    for out in outputs:
        assert parse(out) == expected
