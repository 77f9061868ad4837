"""Training: config, optimiser and schedule, the one step implementation, the host loop,
checkpoints, and where arrays live (one device, or data-parallel over devices and processes).

    from jaxnets.training import TrainConfig, train
    result = train(model, params, (x_train, y_train, x_val, y_val),
                   TrainConfig(learning_rate=0.1, iterations=500))
"""
from jaxnets.grads import TRAIN_MODES
from jaxnets.training import checkpoint, optimizers
from jaxnets.training.accuracy import ACCURACY_BATCH, accuracy, count_correct, number_correct
from jaxnets.training.config import (FULL_BATCH_REPORT_EVERY, MAX_CHUNK, TrainConfig, iterations_per_epoch,
                                     learning_rate_schedule, make_optimizer)
from jaxnets.training.distributed import (DATA_AXIS, ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID,
                                          CoordinatorUnreachableError, data_mesh, initialize_distributed,
                                          local_shard, process_rows)
from jaxnets.training.steps import RUNNING, TrainState, chunk_fn, initial_state, sample_batch_indices
from jaxnets.training.interrupt import Interrupted
from jaxnets.training.train import TrainResult, train, train_data_parallel

__all__ = [
    "TRAIN_MODES", "TrainConfig", "TrainResult", "train", "train_data_parallel", "accuracy",
    "number_correct", "count_correct", "ACCURACY_BATCH", "iterations_per_epoch",
    "learning_rate_schedule", "make_optimizer", "MAX_CHUNK", "FULL_BATCH_REPORT_EVERY",
    "sample_batch_indices", "chunk_fn", "TrainState", "initial_state", "RUNNING", "checkpoint", "optimizers",
    "DATA_AXIS", "ENV_COORDINATOR", "ENV_NUM_PROCESSES", "ENV_PROCESS_ID",
    "CoordinatorUnreachableError", "initialize_distributed", "data_mesh", "process_rows",
    "local_shard", "Interrupted",
]
