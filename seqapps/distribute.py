"""Scale out with tf.distribute: pick a strategy, keep one writer, fail fast when a peer dies.

TensorFlow's own engine does the work (MirroredStrategy on the GPUs of one machine,
MultiWorkerMirroredStrategy across machines); this module only chooses and configures it:

- ``make_strategy("auto")``: MirroredStrategy when more than one GPU is visible,
  MultiWorkerMirroredStrategy when ``TF_CONFIG`` names several workers, else the default
  (one-device) strategy. Build *and* compile the model inside ``strategy.scope()``;
  Keras' ``model.fit`` then runs every step on all replicas.
- Global batch: a dataset's batch is the *global* batch, split over the replicas, so
  results match one device (``global_batch_and_learning_rate`` for per-replica batches
  and the linear learning-rate rule).
- Sharding: ``shard_by(dataset, "data"|"file"|"auto")`` sets tf.data auto-sharding.
- One writer: ``is_chief(strategy)``; ``worker_run_dir`` gives the chief the real run
  folder and every other worker a temporary folder removed afterwards.
- Failure: collectives time out (``collective_timeout_seconds``) and the coordination
  service's heartbeat (``heartbeat_timeout_seconds``) notices a dead worker, so survivors
  stop with ``WorkerLost`` (``peer_failure_message``) instead of hanging.

>>> strategy = make_strategy("default")
>>> strategy.num_replicas_in_sync, is_chief(strategy)
(1, True)
>>> resolve_strategy_name("auto", gpus=0, tf_config={})
'default'
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import tensorflow as tf

from seqapps.errors import ConfigError, SeqappsError, invalid_argument

STRATEGY_NAMES = ("auto", "default", "mirrored", "multi-worker")
SHARD_POLICIES = {
    "auto": tf.data.experimental.AutoShardPolicy.AUTO,
    "file": tf.data.experimental.AutoShardPolicy.FILE,
    "data": tf.data.experimental.AutoShardPolicy.DATA,
    "off": tf.data.experimental.AutoShardPolicy.OFF,
}
# Bounds on noticing a dead peer. A step never waits on a collective longer than this;
# the first steps include tracing on every worker, so keep it well above one step.
DEFAULT_COLLECTIVE_TIMEOUT_SECONDS = 600.0
DEFAULT_HEARTBEAT_TIMEOUT_SECONDS = 30.0  # the CLI defaults (--collective-timeout, --heartbeat-timeout)


class WorkerLost(SeqappsError):
    """A peer of a multi-worker run died or stopped answering; this worker stopped too."""


# --------------------------------------------------------------------------- TF_CONFIG
def read_tf_config(environ=None) -> dict:
    """The parsed ``TF_CONFIG`` environment variable ({} when unset), or ConfigError.

    >>> text = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}'
    >>> read_tf_config({"TF_CONFIG": text})["task"]["index"]
    1
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not text:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({err}). Received: TF_CONFIG={text!r}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster", {}), dict):
        raise ConfigError(f"TF_CONFIG must be a JSON object with a `cluster` object. Received: TF_CONFIG={text!r}")
    return config


def cluster_size(tf_config: dict) -> int:
    """Number of training tasks (chief + workers) that TF_CONFIG names.

    >>> cluster_size({"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]}})
    3
    """
    cluster = tf_config.get("cluster", {})
    return sum(len(cluster.get(job, [])) for job in ("chief", "worker"))


def resolve_strategy_name(name: str = "auto", *, gpus: int | None = None, tf_config: dict | None = None) -> str:
    """The concrete strategy `name` stands for: "default", "mirrored" or "multi-worker".

    "auto" picks "multi-worker" when TF_CONFIG names several workers, else "mirrored"
    when more than one GPU is visible, else "default".

    >>> resolve_strategy_name("auto", gpus=2, tf_config={})
    'mirrored'
    >>> resolve_strategy_name("auto", gpus=0, tf_config={"cluster": {"worker": ["a:1", "b:2"]}})
    'multi-worker'
    """
    if name not in STRATEGY_NAMES:
        raise invalid_argument("strategy", name, f"one of {', '.join(STRATEGY_NAMES)}")
    if name != "auto":
        return name
    tf_config = read_tf_config() if tf_config is None else tf_config
    if cluster_size(tf_config) > 1:
        return "multi-worker"
    gpus = len(tf.config.list_physical_devices("GPU")) if gpus is None else gpus
    return "mirrored" if gpus > 1 else "default"


# --------------------------------------------------------------------------- strategies
def make_strategy(
    name: str = "auto",
    *,
    devices: list[str] | None = None,
    collective_timeout_seconds: float | None = DEFAULT_COLLECTIVE_TIMEOUT_SECONDS,
    heartbeat_timeout_seconds: float | None = DEFAULT_HEARTBEAT_TIMEOUT_SECONDS,
) -> tf.distribute.Strategy:
    """A tf.distribute.Strategy for `name` (see ``resolve_strategy_name``).

    Args:
        name: "auto", "default", "mirrored" or "multi-worker".
        devices: MirroredStrategy devices (default: every GPU, or the CPU when none).
        collective_timeout_seconds: multi-worker: an all-reduce that waits longer fails
            with DeadlineExceeded instead of hanging (None: wait forever).
        heartbeat_timeout_seconds: multi-worker: the coordination service declares a
            worker dead after this long without a heartbeat and stops the others.

    Call it before any other TensorFlow work in the process: the multi-worker strategy
    configures the runtime, which TensorFlow only allows before it is initialised.

    Example:
    >>> make_strategy("default").num_replicas_in_sync
    1
    """
    resolved = resolve_strategy_name(name)
    if resolved == "default":
        return tf.distribute.get_strategy()
    if resolved == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    tf_config = read_tf_config()
    if cluster_size(tf_config) < 1 or "task" not in tf_config:
        raise ConfigError(
            "--strategy multi-worker needs TF_CONFIG with a `cluster` and this process's `task`, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    for value, label in ((collective_timeout_seconds, "collective_timeout_seconds"),
                         (heartbeat_timeout_seconds, "heartbeat_timeout_seconds")):
        if value is not None and not value > 0:
            raise invalid_argument(label, value, "a positive number of seconds or None")
    _configure_coordination_service(tf_config, heartbeat_timeout_seconds)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout_seconds)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _configure_coordination_service(tf_config: dict, heartbeat_timeout_seconds: float | None) -> None:
    # MultiWorkerMirroredStrategy configures the coordination service itself, with
    # TensorFlow's defaults, unless one is configured already: set it first to choose how
    # fast a dead peer is noticed, and to bound the shutdown barrier so that a worker
    # whose peer died does not wait at exit.
    from tensorflow.python.eager import context

    if context.context().coordination_service is not None or heartbeat_timeout_seconds is None:
        return
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2

    cluster = tf_config["cluster"]
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job]))
            for job in ("chief", "worker") if cluster.get(job)]
    leader = "/job:chief/replica:0/task:0" if cluster.get("chief") else "/job:worker/replica:0/task:0"
    milliseconds = int(heartbeat_timeout_seconds * 1000)
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=leader, coordinated_jobs=jobs,
        heartbeat_timeout_in_ms=milliseconds, shutdown_barrier_timeout_in_ms=milliseconds,
    )


def task_of(strategy: tf.distribute.Strategy | None = None) -> tuple[str | None, int]:
    """(task type, task index) of this process; (None, 0) outside a multi-worker run."""
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """True for the one process that writes checkpoints, logs, plots and exports.

    The chief is task "chief" when the cluster has one, else worker 0 (TensorFlow's rule).
    """
    strategy = strategy or tf.distribute.get_strategy()
    task_type, task_id = task_of(strategy)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    has_chief = "chief" in strategy.cluster_resolver.cluster_spec().jobs
    return task_type == "worker" and task_id == 0 and not has_chief


def describe(strategy: tf.distribute.Strategy) -> str:
    """One line for logs, e.g. "MultiWorkerMirroredStrategy: 2 replicas (worker 1 of 2)"."""
    task_type, task_id = task_of(strategy)
    where = "" if task_type is None else f" ({task_type} {task_id})"
    name = type(strategy).__name__
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
    return f"{name}: {strategy.num_replicas_in_sync} replica(s){where}"


@contextlib.contextmanager
def worker_run_dir(run_dir: str | os.PathLike, strategy: tf.distribute.Strategy | None = None) -> Iterator[Path]:
    """The folder this worker writes its run files to.

    The chief gets `run_dir`; any other worker gets a fresh temporary folder, removed
    when the block ends (also on error), so only the chief's files survive. Workers of a
    multi-worker run all save (saving may run collectives), only the chief's copy stays.

    >>> with worker_run_dir("runs/x", make_strategy("default")) as folder:
    ...     str(folder)
    'runs/x'
    """
    if is_chief(strategy):
        yield Path(run_dir)
        return
    task_type, task_id = task_of(strategy)
    folder = Path(tempfile.mkdtemp(prefix=f"seqapps-{task_type}{task_id}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- data
def shard_by(dataset: tf.data.Dataset, policy: str = "data") -> tf.data.Dataset:
    """Set how tf.data auto-sharding splits `dataset` across workers.

    "file": each worker reads a disjoint subset of the input files (needs at least one
    file per worker and about as many records per worker, else workers run different
    numbers of steps); "data": every worker reads everything and keeps its share of each
    global batch (always even); "auto": file when possible, else data; "off": none.

    >>> shard_by(tf.data.Dataset.range(4), "data").options().experimental_distribute.auto_shard_policy.name
    'DATA'
    """
    if policy not in SHARD_POLICIES:
        raise invalid_argument("policy", policy, f"one of {', '.join(SHARD_POLICIES)}")
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = SHARD_POLICIES[policy]
    return dataset.with_options(options)


def global_batch_and_learning_rate(
    batch_size: int, learning_rate: float, *, replicas: int, per_replica: bool = False
) -> tuple[int, float]:
    """The global batch and learning rate to train with on `replicas` replicas.

    With ``per_replica=False`` (the default) `batch_size` is the global batch: each
    replica gets ``batch_size / replicas`` and the gradient is the same mean over the
    global batch as on one device, so the learning rate stays. With ``per_replica=True``
    every replica keeps `batch_size`, the global batch grows to ``batch_size * replicas``
    and the learning rate follows the linear scaling rule (Goyal et al., 2017).

    >>> global_batch_and_learning_rate(32, 0.002, replicas=4)
    (32, 0.002)
    >>> global_batch_and_learning_rate(32, 0.002, replicas=4, per_replica=True)
    (128, 0.008)
    """
    if per_replica:
        return batch_size * replicas, learning_rate * replicas
    if batch_size < replicas:
        raise invalid_argument("batch_size", batch_size, f"at least the number of replicas ({replicas})")
    return batch_size, learning_rate


# --------------------------------------------------------------------------- failure
_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
                tf.errors.CancelledError, tf.errors.InternalError)


def peer_failure_message(error: BaseException, strategy: tf.distribute.Strategy | None = None) -> str | None:
    """One line naming the problem when `error` means a peer of a multi-worker run is gone.

    None when this is not a multi-worker run or `error` is not a communication failure.

    >>> peer_failure_message(ValueError("x")) is None
    True
    """
    strategy = strategy or tf.distribute.get_strategy()
    task_type, task_id = task_of(strategy)
    if task_type is None or not isinstance(error, _PEER_ERRORS):
        return None
    text = str(error)
    dead = re.findall(r"/job:\w+/replica:\d+/task:\d+", text.split("unhealthy", 1)[1]) if "unhealthy" in text else []
    if dead:
        problem = f"{', '.join(sorted(set(dead)))} stopped sending heartbeats (it crashed, was killed or is unreachable)"
    elif isinstance(error, tf.errors.DeadlineExceededError):
        problem = "a collective operation timed out: a peer is dead or stuck"
    else:
        problem = "the connection to a peer was lost: it probably died"
    reason = re.sub(r"\{\{[^}]*\}\}\s*", "", text).split("\n")[0].strip()[:200]
    return (f"multi-worker training stopped on {task_type} {task_id}: {problem} "
            f"[{type(error).__name__}: {reason}]")


# --------------------------------------------------------------------------- Keras glue
def prepare_for_strategy(model) -> None:
    """Work around two Keras 3.15 problems of `fit` under a tf.distribute strategy.

    Call it after building and compiling `model` in ``strategy.scope()`` (``fit`` in
    seqapps.training does). Both are reported upstream-worthy bugs of Keras' TensorFlow
    trainer (keras/src/backend/tensorflow/trainer.py):

    1. Before training, ``_maybe_symbolic_build`` averages the first distributed batch
       across replicas with ``strategy.reduce("MEAN", batch)`` only to learn its shapes
       and dtypes. That fails on a nested batch (``{"features", "mask"}`` inputs:
       "Attempt to convert a value ({'features': PerReplica...") and would average labels
       and masks. This model instance takes them from the first local replica instead.
    2. Under MultiWorkerMirroredStrategy each step's logged metrics are reduced with
       ``strategy.reduce("MEAN", value, axis=0)``, which fails on scalars ("Invalid
       reduction dimension 0 for input with 0 dimensions"). Keras' metric variables are
       mirrored and summed across replicas at every update, so every replica already
       holds the global value; the reduction takes the local one (process-wide patch,
       only for multi-worker strategies; other strategies are untouched).

    Example:
    >>> from seqapps.tasks import SequenceClassifier
    >>> model = SequenceClassifier(num_classes=2, input_shape=(None, 3), units=4)
    >>> prepare_for_strategy(model)
    """
    strategy = model.distribute_strategy

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None and data_batch is None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(local, next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _patch_multi_worker_metric_reduction()


def _patch_multi_worker_metric_reduction() -> None:
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "seqapps_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            reduction = "first"
        return original(values, strategy, reduction)

    reduce_per_replica.seqapps_patched = True
    trainer.reduce_per_replica = reduce_per_replica
