"""The timing harness: medians after warm-up, candidates timed round-robin, the machine's own
limits (matmul peak, read bandwidth) measured in the same run, and a description of the machine.

Every number is the median of repeated timings after warm-up (compilation excluded), with
`block_until_ready` on the outputs.
"""
from __future__ import annotations

import datetime
import os
import platform
import random
import statistics
import time

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
REEXEC_FLAG = "JAXNETS_BENCH_OPENBLAS_CLEARED"


def block(out):
    import jax

    return jax.block_until_ready(out)


def median_time(fn, repeats, warmup=1, setup=None, inner=1):
    """(median seconds per call of `fn(arg)`, samples) over `repeats` samples of `inner` calls
    each, after `warmup` untimed calls; `setup()` (untimed) makes a fresh argument per sample
    (donated buffers), then `inner` must be 1."""
    return interleaved({"": (fn, setup, inner)}, repeats, warmup)[""]


#: idle seconds before each timed sample: the previous candidate's worker threads (PyTorch's
#: OpenMP pool, XLA's Eigen pool) spin-wait for a while after their work, and without a pause
#: they took CPU from whichever candidate came next (two identical XLA programs measured
#: 1.3-1.9x apart by position alone, on 2 busy cores)
SETTLE_S = 0.003


def interleaved(cands, repeats, warmup=1, settle=SETTLE_S):
    """Time several candidates round-robin (one sample of each per round), so that a change
    in the machine's load hits all of them alike; returns {name: (median, samples)}.
    cands: {name: (fn, setup, inner)} as for median_time. Each round takes the candidates
    in a fresh (seeded) random order, so none always follows the same other one, and each
    sample starts after `settle` idle seconds."""
    for fn, setup, inner in cands.values():
        for _ in range(warmup):
            block(fn(setup() if setup else None))
    order = random.Random(0)
    names = list(cands)
    samples = {name: [] for name in cands}
    for _ in range(repeats):
        order.shuffle(names)
        for name in names:
            fn, setup, inner = cands[name]
            arg = setup() if setup else None
            if settle:
                time.sleep(settle)
            t0 = time.perf_counter()
            for _ in range(inner):
                out = fn(arg)
            block(out)
            samples[name].append((time.perf_counter() - t0) / inner)
    return {name: (statistics.median(v), v) for name, v in samples.items()}


class Rows:
    """The result rows of one workload, printed as they come."""

    def __init__(self, workload, unit):
        self.workload, self.unit, self.rows = workload, unit, []

    def add(self, name, kind, seconds, samples=None, per=1, note="", mode=None):
        """seconds: median seconds per `per` units (per > 1 for a call that runs many steps)."""
        sec = seconds / per
        value = 1.0 / sec if self.unit == "steps/s" else sec * 1e3
        row = {"workload": self.workload, "impl": name, "kind": kind, "mode": mode,
               "seconds": sec, "value": value, "unit": self.unit, "note": note}
        if samples is not None:
            row["samples_s"] = [s / per for s in samples]
        self.rows.append(row)
        print(f"  {self.workload}  {name:52s} {value:10.3f} {self.unit}", flush=True)
        return row


class Group:
    """Candidates timed together, round-robin (`interleaved`), then added as rows in order."""

    def __init__(self):
        self.cands, self.meta = {}, {}

    def add(self, name, kind, fn, setup=None, inner=1, per=1, mode=None, note=""):
        self.cands[name] = (fn, setup, inner)
        self.meta[name] = (kind, per, mode, note)

    def run(self, rows, rounds):
        for name, (t, samples) in interleaved(self.cands, rounds).items():
            kind, per, mode, note = self.meta[name]
            rows.add(name, kind, t, samples, per=per, mode=mode, note=note)


def measure_limits(m_rows, quick=False):
    """Float32 matmul GFLOP/s (n^3, JAX and NumPy: the larger counts), read bandwidth (a sum
    over 64M floats), and one read of an (m_rows, 784) array as float32 and as uint8."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    n = 1024 if quick else 2048
    reps = 5 if quick else 10
    a = jnp.asarray(np.random.default_rng(0).random((n, n)), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    t_jax, _ = median_time(lambda _: mm(a), reps, warmup=2)
    an = np.asarray(a)
    t_np, _ = median_time(lambda _: an @ an, reps, warmup=2)
    flops = 2.0 * n**3
    size = (16 if quick else 64) * 1024 * 1024
    big = jnp.ones((size,), jnp.float32)
    total = jax.jit(jnp.sum)
    t_read, _ = median_time(lambda _: total(big), reps * 2, warmup=2)
    bign = np.ones((size,), np.float32)
    t_read_np, _ = median_time(lambda _: bign.sum(), reps, warmup=1)
    x32 = jnp.ones((m_rows, 784), jnp.float32)
    t_x32, _ = median_time(lambda _: total(x32), reps * 2, warmup=2)
    x8 = jnp.ones((m_rows, 784), jnp.uint8)
    sum8 = jax.jit(lambda a: jnp.sum(a.astype(jnp.float32)))
    t_x8, _ = median_time(lambda _: sum8(x8), reps * 2, warmup=2)
    out = {
        "matmul_n": n,
        "matmul_gflops_jax": flops / t_jax / 1e9,
        "matmul_gflops_numpy": flops / t_np / 1e9,
        "read_gbps_jax": 4 * size / t_read / 1e9,
        "read_gbps_numpy": 4 * size / t_read_np / 1e9,
        "read_x_float32_ms": t_x32 * 1e3,
        "read_x_uint8_ms": t_x8 * 1e3,
    }
    out["matmul_gflops"] = max(out["matmul_gflops_jax"], out["matmul_gflops_numpy"])
    out["read_gbps"] = max(out["read_gbps_jax"], out["read_gbps_numpy"])
    return out


def machine():
    """What ran the benchmark: CPU, cores, backend, versions, precision, load."""
    import jax
    import numpy as np

    cpu = platform.processor() or platform.machine()
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    cpu = fields.get("model name", cpu)
    flags = set(fields.get("flags", "").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    cpu_id = ", ".join(p for p in (f"family {fields['cpu family']} model {fields['model']}"
                                   if "cpu family" in fields and "model" in fields else None, vector) if p)
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cpu_id": cpu_id, "cores": os.cpu_count(), "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind), "jax": jax.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "matmul_precision": "float32",
        "openblas_env": {k: os.environ.get(k) for k in OPENBLAS_VARS},
        "openblas_env_cleared_for_this_run": os.environ.get(REEXEC_FLAG) == "1",
    }
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def torch_module():
    """(torch or None, a note saying which and with how many threads, or why not)."""
    try:
        import torch
    except Exception as err:  # not installed, or broken
        return None, f"not installed ({type(err).__name__})"
    return torch, f"torch {torch.__version__}, {torch.get_num_threads()} threads"
