"""Document 000's two example filters applied to a real image with jaxnets' conv_forward.

Filter 0 turns an RGB image to grayscale (centre taps 0.3, 0.6, 0.1 on channels 0, 1, 2);
filter 1 detects horizontal edges in the blue channel ([[1,2,1],[0,0,0],[-1,-2,-1]]).
The image is matplotlib's bundled sample photo (Grace Hopper), so no download is needed.
The JAX output is checked against reference_numpy's loop implementation on a crop.
"""
import time

import jax.numpy as jnp
import numpy as np
from matplotlib import cbook
from matplotlib import image as mpimg

from experiments import options, plots, runs
from jaxnets.ops import conv_forward
from reference_numpy import naive


def document_filters():
    """w (2, 3, 3, 3) and b (2,) exactly as document 000 writes them."""
    w = np.zeros((2, 3, 3, 3))
    w[0, 0, 1, 1], w[0, 1, 1, 1], w[0, 2, 1, 1] = 0.3, 0.6, 0.1
    w[1, 2] = [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]
    return w, np.zeros(2)


def load_image():
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = mpimg.imread(f, format="jpg")
    return np.asarray(img, dtype=np.float64)[..., :3] / 255.0  # (H, W, 3) in [0, 1]


def run(out_root=None, log=print, overwrite=False):
    t0 = time.perf_counter()
    folder = runs.RunFolder("000_filters", out_root, overwrite=overwrite)
    img = load_image()
    x = img.transpose(2, 0, 1)[None]  # NCHW
    w, b = document_filters()
    out, _ = conv_forward(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32),
                          jnp.asarray(b, jnp.float32), stride=1, pad=1)
    out = np.asarray(out)
    crop = x[:, :, :24, :24]
    loops, _ = naive.conv_forward_naive(crop, w, b, stride=1, pad=1)
    # The crop's right/bottom edge sees zero padding instead of the neighbouring pixels,
    # so compare the 23x23 interior.
    err_inner = float(np.max(np.abs(loops[:, :, :23, :23] - out[:, :, :23, :23])))
    gray_err = float(np.max(np.abs(out[0, 0] - (0.3 * x[0, 0] + 0.6 * x[0, 1] + 0.1 * x[0, 2]))))

    metrics = {
        "experiment": "000 example filters",
        "data": "matplotlib sample_data/grace_hopper.jpg",
        "image_shape": list(x.shape),
        "max_abs_diff_vs_numpy_naive_loops": err_inner,
        "max_abs_diff_grayscale_vs_formula": gray_err,
        "wall_time_s": time.perf_counter() - t0,
    }
    with folder.writing() as run_dir:
        plots.filter_outputs(run_dir / "filters.png", img, [out[0, 0], np.abs(out[0, 1])],
                             ["filter 0: grayscale", "filter 1: |horizontal edges| (blue)"])
        runs.write_metrics(run_dir, metrics)
    run_dir = folder.final
    log(f"000 filters: image {x.shape}, |jax - numpy loops| = {err_inner:.2e} "
          f"on a crop, grayscale vs formula {gray_err:.2e} -> {run_dir}/filters.png")
    return run_dir, metrics


def main(argv=None, log=print):
    p = options.parser("jaxnets train filters", __doc__)
    p.add_argument("--out", default=None, help="runs folder (default ./runs)")
    options.add_overwrite(p)
    args = p.parse_args(argv)
    return run(args.out, log, args.overwrite)[1]


if __name__ == "__main__":
    main()
