"""Predict with a trained run folder: `jaxnets predict RUN_DIR FILE [FILE ...] [--labels IDX]`.

FILE is a 28x28 image (PNG or JPEG; grey, or RGB/RGBA converted to grey by luminance — no
resizing, no inversion: MNIST digits are light on dark), an IDX image file (`*-idx3-ubyte[.gz]`)
or a Kaggle CSV (`train.csv` with labels, `test.csv` without). The run's own preprocessing
(`preprocess.npz`, fitted on its training images) is applied, then the model's forward pass.
Prints one line per image (up to `--show`), and the accuracy when labels are known (a Kaggle
train.csv, or `--labels` with an IDX label file).
"""
import sys
from pathlib import Path

import numpy as np

from experiments import image_data, options, runs
from jaxnets.data import DataError, PixelTransform, read_idx_images, read_idx_labels, read_kaggle_csv
from jaxnets.models import build_model

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_run(run_dir):
    """(model, params, model state or None, transform, class_names) of a run folder written by
    an experiment."""
    run_dir = Path(run_dir)
    for name in ("metrics.json", "params.npz", "preprocess.npz"):
        if not (run_dir / name).is_file():
            extra = " (predict works with the image experiments' run folders)" if name == "preprocess.npz" else ""
            raise DataError(f"{run_dir}: not a run folder, {name} is missing{extra}")
    metrics = runs.read_metrics(run_dir, needs=("model", "model_config", "data"))
    model = build_model(metrics["model"], metrics["model_config"])
    transform = PixelTransform.from_arrays(runs.read_npz(run_dir / "preprocess.npz", "preprocessing"))
    data = metrics["data"] if isinstance(metrics["data"], dict) else {}
    class_names = image_data.FASHION_CLASSES if data.get("name") == "fashion-mnist" else None
    return model, *runs.load_params(run_dir, model), transform, class_names


def read_image_file(path):
    """A 28x28 picture as uint8 (1, 28, 28)."""
    from matplotlib import image as mpimg

    try:
        img = np.asarray(mpimg.imread(path))
    except Exception as e:  # PIL / matplotlib raise many kinds
        raise DataError(f"{path}: cannot read image ({e})") from None
    if img.dtype != np.uint8:  # PNG comes as float in [0, 1]
        img = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    if img.ndim == 3:
        if img.shape[2] not in (3, 4):
            raise DataError(f"{path}: image has {img.shape[2]} channels, expected 1, 3 or 4")
        img = np.round(img[..., :3].astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    if img.shape != (28, 28):
        raise DataError(f"{path}: image is {img.shape[1]}x{img.shape[0]} pixels; the models take 28x28 "
                        "(resize it yourself: predict does not resample)")
    return img[None]


def read_inputs(path):
    """(images uint8 (N, 28, 28), labels or None) from one file, by its kind."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(IMAGE_SUFFIXES):
        return read_image_file(path), None
    if name.endswith((".csv", ".csv.gz")):
        return read_kaggle_csv(path)
    if "idx3" in name:
        return read_idx_images(path), None
    raise DataError(f"{path}: unknown file kind; give a .png/.jpg image, an *idx3-ubyte[.gz] file or a .csv")


def main(argv=None, log=print):
    p = options.Parser(prog="jaxnets predict", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="a run folder (runs/<experiment>) with metrics.json, params.npz, preprocess.npz")
    p.add_argument("files", nargs="+", help="images, IDX image files or Kaggle CSVs")
    p.add_argument("--labels", help="IDX label file for a single IDX image file: report accuracy")
    p.add_argument("--show", type=options.integer(0), default=20, help="print at most this many predictions (default 20)")
    args = p.parse_args(argv)
    model, params, state, transform, class_names = load_run(args.run_dir)
    images, labels = [], []
    for f in args.files:
        x, y = read_inputs(f)
        images.append(x)
        labels.append(y)
    if args.labels:
        if len(args.files) != 1:
            raise DataError("--labels goes with exactly one IDX image file")
        labels = [read_idx_labels(args.labels).astype(np.int32)]
        if labels[0].shape[0] != images[0].shape[0]:
            raise DataError(f"{args.labels} has {labels[0].shape[0]} labels for {images[0].shape[0]} images")
    x = np.concatenate(images)
    scores = np.asarray(model.scores(params, transform(x), state=state))
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    pred = probs.argmax(axis=1)
    name = (lambda c: class_names[c]) if class_names else str
    known = np.concatenate(labels) if all(y is not None for y in labels) else None
    for i in range(min(len(pred), args.show)):
        truth = f"  label {name(int(known[i]))}" if known is not None else ""
        log(f"{i:6d}  prediction {name(int(pred[i]))}  (p = {probs[i, pred[i]]:.3f}){truth}")
    if len(pred) > args.show:
        log(f"... {len(pred) - args.show} more")
    if known is not None:
        log(f"accuracy {np.mean(pred == known):.4f} on {len(pred)} labelled images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
