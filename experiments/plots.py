"""PNG plots of a run: loss curve, accuracy curves, image grids, learned conv filters."""
import math

import numpy as np


def _pyplot():
    """matplotlib.pyplot on the Agg backend, imported when the first plot is drawn (it takes
    about a second, which a command that stops at a bad option should not pay)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def loss_curve(path, losses, title="training loss", steps=None):
    losses = np.asarray(losses, dtype=float)
    steps = np.arange(len(losses)) if steps is None else np.asarray(steps)
    fig, ax = _pyplot().subplots(figsize=(6, 3.6))
    ax.plot(steps, losses, lw=0.8)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if np.all(losses[np.isfinite(losses)] > 0) and losses.max() / max(losses.min(), 1e-12) > 20:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def accuracy_curves(path, steps, curves, title="accuracy", xlabel="iteration"):
    """curves: {label: list of accuracies at `steps`}; empty curves are skipped."""
    fig, ax = _pyplot().subplots(figsize=(6, 3.6))
    for label, values in curves.items():
        if values is not None and len(values):
            ax.plot(steps[: len(values)], values, marker="o", ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def image_grid(path, images, labels, predictions=None, class_names=None, n=16, title=None):
    """A grid of the first n images captioned 'label L / pred P' (red when wrong).

    One canvas in one axes rather than an axes per image: a third of the time to draw, and
    every run writes two of these."""
    images = np.asarray(images)[:n]
    if images.ndim == 2:
        side = int(round(math.sqrt(images.shape[1])))
        images = images.reshape(-1, side, side)
    if images.ndim == 4:
        images = images[:, 0]
    k, h, w = images.shape
    cols = int(math.ceil(math.sqrt(k)))
    rows = int(math.ceil(k / cols))
    gap_x, gap_y = w // 4, h // 2  # room between tiles, above each for its two-line caption
    canvas = np.full((rows * (h + gap_y), cols * (w + gap_x)), np.nan)
    name = (lambda c: class_names[int(c)]) if class_names else (lambda c: str(int(c)))
    fig, ax = _pyplot().subplots(figsize=(1.6 * cols, 1.8 * rows))
    for i in range(k):
        r, c = divmod(i, cols)
        y0, x0 = r * (h + gap_y) + gap_y, c * (w + gap_x)
        canvas[y0:y0 + h, x0:x0 + w] = images[i]
        text = f"label {name(labels[i])}"
        color = "black"
        if predictions is not None:
            text += f"\npred {name(predictions[i])}"
            color = "black" if int(predictions[i]) == int(labels[i]) else "red"
        ax.text(x0 + w / 2, y0 - 1, text, ha="center", va="bottom", fontsize=7, color=color)
    ax.imshow(canvas, cmap=_pyplot().get_cmap("gray").with_extremes(bad="white"), interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def conv_filters(path, w, title="learned conv filters (channel 0)"):
    """Show each filter w[f, 0] of an (F, C, HH, WW) array, each on its own colour scale."""
    w = np.asarray(w)
    f = w.shape[0]
    cols = min(f, 8)
    rows = int(math.ceil(f / cols))
    fig, axes = _pyplot().subplots(rows, cols, figsize=(1.3 * cols, 1.4 * rows + 0.3), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < f:
            ax.imshow(w[k, 0], cmap="RdBu_r", vmin=-np.abs(w[k, 0]).max(), vmax=np.abs(w[k, 0]).max())
            ax.set_title(f"filter {k}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def filter_outputs(path, image, outputs, titles):
    """An RGB image (H, W, 3) in [0, 1] next to single-channel filter outputs."""
    fig, axes = _pyplot().subplots(1, 1 + len(outputs), figsize=(3.2 * (1 + len(outputs)), 3.2))
    axes[0].imshow(np.clip(image, 0, 1))
    axes[0].set_title("input")
    for ax, out, t in zip(axes[1:], outputs, titles):
        ax.imshow(out, cmap="gray")
        ax.set_title(t)
    for ax in axes:
        ax.axis("off")
    return _save(fig, path)


def against_scale(path, scales, series, ylabel, title, log_y=False):
    """Lines of `series` {label: values at each of `scales`} against a log-scaled x axis
    (the normalisation experiment's weight scales); NaN values (diverged runs) are gaps. A
    label "A: B" takes A's colour and, for B = "val", a dashed line."""
    fig, ax = _pyplot().subplots(figsize=(6, 3.8))
    colours = {}
    for label, values in series.items():
        group, _, part = label.partition(": ")
        colour = colours.setdefault(group, f"C{len(colours)}")
        ax.plot(scales, values, marker="o", ms=3, label=label, color=colour, ls="--" if part == "val" else "-")
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("weight initialisation scale")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def gradient_norms(path, panels, titles):
    """One panel per entry of `panels` {name: {label: norms of dL/dh_t for t = 0..T-1}}, each
    curve divided by its last step's norm, on a log y axis shared by the panels (so the cells
    compare at a glance)."""
    fig, axes = _pyplot().subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), sharey=True, squeeze=False)
    for ax, (name, curves) in zip(axes[0], panels.items()):
        for i, (label, norms) in enumerate(curves.items()):
            norms = np.asarray(norms, dtype=float)
            ax.plot(np.arange(len(norms)), norms / norms[-1], label=label, color=f"C{i}", lw=1.2)
        ax.set_yscale("log")
        ax.set_xlabel("time step t")
        ax.set_title(titles.get(name, name))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("||dL/dh_t|| / ||dL/dh_{T-1}||")
    return _save(fig, path)


def attention_map(path, maps, labels, title):
    """One heatmap per head of `maps` (heads, T, T): row i = query token i, column j = key
    token j, both axes labelled with `labels` (T strings); weights from 0 to 1."""
    maps = np.asarray(maps, dtype=float)
    heads, t = maps.shape[0], maps.shape[1]
    fig, axes = _pyplot().subplots(1, heads, figsize=(2.6 * heads + 0.8, 3.2), squeeze=False)
    for h, ax in enumerate(axes[0]):
        im = ax.imshow(maps[h], cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(t))
        ax.set_yticks(range(t))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_xlabel("key")
        if h == 0:
            ax.set_ylabel("query")
        ax.set_title(f"head {h}", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path
