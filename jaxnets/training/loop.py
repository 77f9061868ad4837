"""The host side of training: run chunks of steps, record losses, report, checkpoint, and
roll back after a divergence. Placement-agnostic: `train()` uses it on one device and on many.

Reports: accuracies on the WHOLE training set and the validation set at update counts 0,
report_every, 2*report_every, ... and at the last step. 001/003's "accuracy at iteration i" is
the same quantity (taken before update i, i.e. after i updates). 002 measures one update
later (after update `it`) and its train accuracy is that of the current minibatch only (200
rows: a noisy number); here the train accuracy is always the whole training set's, a
deliberate change that costs one forward pass over the training rows per report.
"""
import time

import numpy as np

from jaxnets.training.steps import BAD_LOSS, RUNNING

HISTORY_KEYS = ("loss", "report_step", "train_acc", "val_acc", "lr")


def new_history():
    return {k: [] for k in HISTORY_KEYS}


def host_value(a):
    """A (replicated) device array's value on the host, also for arrays spanning processes."""
    return np.asarray(a.addressable_data(0))


def reporter(history, schedule, bar, total, sizes):
    """`record(at_step, counts)`: record the accuracies counts / sizes (correct predictions on
    the training set and, when there is one, the validation set, as the chunk's evaluation
    counted them) and the learning rate at `at_step` in `history`, and update the progress
    bar."""

    def record(at_step, counts):
        accs = [int(c) / n for c, n in zip(counts, sizes)]
        history["report_step"].append(at_step)
        history["train_acc"].append(accs[0])
        if len(accs) > 1:
            history["val_acc"].append(accs[1])
        history["lr"].append(None if schedule is None  # an optax object keeps its rate to itself
                             else float(schedule(at_step)) if callable(schedule) else float(schedule))
        last_loss = history["loss"][-1] if history["loss"] else None
        bar.update(at_step, last_loss, accs[0], accs[1] if len(accs) > 1 else None, final=at_step >= total)

    return record


#: seconds one chunk call should take at most once the pace is known (progress every ~2 s)
CHUNK_SECONDS = 2.0


def run_chunks(run_chunk, state, inputs, step, total, report, chunk, record, bar, history,
               checkpoint_every=None, save=None, stop_requested=None):
    """Run fused chunks of steps up to `total` (`report` = (every, total, evaluation data),
    evaluated on the device), stopping at every checkpoint step; record the losses and the
    reports, checkpoint (`save(params, opt_state, model_state, step)`). A chunk runs at most
    `chunk` steps, and once the pace is known only as many as take CHUNK_SECONDS, so progress
    keeps coming. `stop_requested() -> bool`, asked before every chunk, ends the loop early (a signal;
    see `interrupt`). Returns (state, step, status, loss of the failed step or None)."""
    status, bad_loss, pace = RUNNING, None, None
    while step < total and status == RUNNING and not (stop_requested is not None and stop_requested()):
        stop = min(total, step + chunk)
        if pace is not None:
            stop = min(stop, step + max(1, int(CHUNK_SECONDS / pace)))
        if checkpoint_every:
            stop = min(stop, (step // checkpoint_every + 1) * checkpoint_every)
        started = time.perf_counter()
        state, losses, counts = run_chunk(state, *inputs, np.int32(stop - step), report)
        new_step, status = int(host_value(state.step)), int(host_value(state.status))
        pace = (time.perf_counter() - started) / max(new_step - step, 1)
        losses, counts = host_value(losses), host_value(counts)
        history["loss"].extend(float(v) for v in losses[: new_step - step])
        if status != RUNNING:
            bad_loss = float(losses[new_step - step])
        reported = False
        for i in range(new_step - step):
            if counts[i][0] >= 0:
                record(step + i + 1, counts[i])
                reported = True
        step = new_step
        if status == RUNNING:
            if not reported:
                bar.update(step, history["loss"][-1] if history["loss"] else None)
            if checkpoint_every and step % checkpoint_every == 0 and step < total:
                save(state.params, state.opt_state, state.model_state, step)
    return state, step, status, bad_loss


def drop_reports_after(history, at_step):
    """Remove the reports taken after update `at_step` (a rolled-back step's)."""
    while history["report_step"] and history["report_step"][-1] > at_step:
        for name in ("report_step", "train_acc", "lr", "val_acc"):
            if len(history[name]) == len(history["report_step"]):
                history[name].pop()


def roll_back(state, status, step, run_start, bad_loss, history, config):
    """After a non-finite step: the parameters (optimiser and model state) to keep, their step
    and the message (see `train`). `step` is the failed step; history's losses and reports past
    the kept step go."""
    failed = step
    params, opt_state, model_state = state.params, state.opt_state, state.model_state
    if status == BAD_LOSS and step > run_start:
        params, opt_state, model_state = state.prev_params, state.prev_opt_state, state.prev_model_state
        step -= 1
        good_loss = history["loss"][step]  # loss of the kept params, measured at `step`
        del history["loss"][step:]
        kept = f"returning the parameters after {step} updates (their loss was {good_loss:.6g})"
    elif status == BAD_LOSS:
        kept = f"the starting parameters (after {step} updates) already give a non-finite loss; returning them"
    else:
        kept = f"returning the parameters after {step} updates (their loss {bad_loss:.6g} is finite)"
    what = "loss" if status == BAD_LOSS else "gradient"
    message = (
        f"training diverged: non-finite {what} at step {failed} "
        f"(loss {bad_loss}) with mode={config.mode!r}, learning_rate={config.learning_rate}; {kept}"
    )
    drop_reports_after(history, step)
    return params, opt_state, model_state, step, message
