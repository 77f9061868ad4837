"""The host side of training: run chunks of steps, record losses, report, checkpoint, and
roll back after a divergence. Placement-agnostic: `train()` uses it on one device and on many.

Reports: accuracies on the WHOLE training set and the validation set at update counts 0,
report_every, 2*report_every, ... and at the last step. 001/003's "accuracy at iteration i" is
the same quantity (taken before update i, i.e. after i updates). 002 measures one update
later (after update `it`) and its train accuracy is that of the current minibatch only (200
rows: a noisy number); here the train accuracy is always the whole training set's, a
deliberate change that costs one forward pass over the training rows per report.
"""
import numpy as np

from jaxnets.training.steps import BAD_LOSS, RUNNING

HISTORY_KEYS = ("loss", "report_step", "train_acc", "val_acc", "lr")


def new_history():
    return {k: [] for k in HISTORY_KEYS}


def host_value(a):
    """A (replicated) device array's value on the host, also for arrays spanning processes."""
    return np.asarray(a.addressable_data(0))


def reporter(history, schedule, bar, total, train_accuracy, val_accuracy=None):
    """`report(at_step, params)`: record the accuracies (`train_accuracy(params)`, and
    `val_accuracy(params)` unless None) and the learning rate at `at_step` in `history`, and
    update the progress bar."""

    def report(at_step, params):
        train_acc = train_accuracy(params)
        val_acc = val_accuracy(params) if val_accuracy is not None else None
        history["report_step"].append(at_step)
        history["train_acc"].append(train_acc)
        if val_acc is not None:
            history["val_acc"].append(val_acc)
        history["lr"].append(float(schedule(at_step)) if callable(schedule) else float(schedule))
        last_loss = history["loss"][-1] if history["loss"] else None
        bar.update(at_step, last_loss, train_acc, val_acc, final=at_step >= total)

    return report


def run_chunks(run_chunk, state, inputs, step, total, report_every, chunk, history, report, bar,
               checkpoint_every=None, save=None):
    """Run fused chunks of steps up to `total`, stopping at every report and checkpoint step;
    record the losses, report, checkpoint (`save(state, step)`). Returns (state, step, status,
    loss of the failed step or None)."""
    status, bad_loss = RUNNING, None
    while step < total and status == RUNNING:
        stop = min(total, (step // report_every + 1) * report_every, step + chunk)
        if checkpoint_every:
            stop = min(stop, (step // checkpoint_every + 1) * checkpoint_every)
        state, losses = run_chunk(state, *inputs, np.int32(stop - step))
        new_step, status = int(host_value(state.step)), int(host_value(state.status))
        losses = host_value(losses)
        history["loss"].extend(float(v) for v in losses[: new_step - step])
        if status != RUNNING:
            bad_loss = float(losses[new_step - step])
        step = new_step
        if status == RUNNING:
            if step % report_every == 0 or step == total:
                report(step, state.params)
            else:
                bar.update(step, history["loss"][-1] if history["loss"] else None)
            if checkpoint_every and step % checkpoint_every == 0 and step < total:
                save(state.params, state.opt_state, step)
    return state, step, status, bad_loss


def drop_reports_after(history, at_step):
    """Remove the reports taken after update `at_step` (a rolled-back step's)."""
    while history["report_step"] and history["report_step"][-1] > at_step:
        for name in ("report_step", "train_acc", "lr", "val_acc"):
            if len(history[name]) == len(history["report_step"]):
                history[name].pop()


def roll_back(state, status, step, run_start, bad_loss, history, config):
    """After a non-finite step: the parameters to keep, their step and the message (see
    `train`). `step` is the failed step; history's losses and reports past the kept step go."""
    failed = step
    params, opt_state = state.params, state.opt_state
    if status == BAD_LOSS and step > run_start:
        params, opt_state = state.prev_params, state.prev_opt_state
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
    return params, opt_state, step, message
