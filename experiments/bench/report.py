"""The benchmark's verdicts: each row against the document-style NumPy baseline and against
the machine's limit, manual/autodiff ratios, the targets met or missed, as Markdown tables."""
from experiments.bench.workloads import TITLES, UNITS

#: the issue's targets on the 2-core CPU (medians)
TARGETS = {
    "A": {"what": "ms/iter", "target": 6.0, "better": "lower", "doc_numpy": 45.0},
    "B": {"what": "steps/s", "target": 2300.0, "better": "higher", "doc_numpy": 450.0},
    "C": {"what": "ms/batch", "target": 1.0, "better": "lower", "doc_numpy": 3300.0},
    "manual/autodiff": {"what": "ratio", "target": 1.0, "better": "lower"},
}


def summarise(result):
    limits = result["limits"]
    peak = limits["matmul_gflops"] * 1e9
    bw = limits["read_gbps"] * 1e9
    summary = {}
    for w, meta in result["work"].items():
        rows = [r for r in result["rows"] if r["workload"] == w]
        doc = next((r for r in rows if r["kind"] == "numpy-doc"), None)
        limit_s = max(meta["flops"] / peak, meta["bytes_min"] / bw)
        for r in rows:
            r["vs_doc_numpy"] = doc["seconds"] / r["seconds"] if doc else None
            r["pct_of_limit"] = 100.0 * limit_s / r["seconds"]
        jax_rows = [r for r in rows if r["kind"] in ("jax-mode", "fused", "fast")]
        best = min(jax_rows, key=lambda r: r["seconds"])
        torch_row = next((r for r in rows if r["kind"] == "torch"), None)
        summary[w] = {"limit_seconds": limit_s, "flops": meta["flops"], "best_jaxnets": best["impl"],
                      "best_value": best["value"], "unit": best["unit"],
                      "torch_value": torch_row["value"] if torch_row else None}
    ratios = {}
    for w in ("A", "B", "C", "D"):
        per_mode = {r["mode"]: r["seconds"] for r in result["rows"]
                    if r["workload"] == w and r["kind"] == "jax-mode"}
        fused_mode = {r["mode"]: r["seconds"] for r in result["rows"]
                      if r["workload"] == w and r["kind"] in ("fused", "fused-train")}
        if per_mode:
            ratios[w] = {"jit": per_mode["manual"] / per_mode["autodiff"],
                         "fused_loop": (fused_mode["manual"] / fused_mode["autodiff"]) if fused_mode else None}
    summary["manual_over_autodiff"] = ratios
    verdicts = []
    for w in ("A", "B", "C"):
        if w not in summary:
            continue
        t = TARGETS[w]
        v = summary[w]["best_value"]
        met = v <= t["target"] if t["better"] == "lower" else v >= t["target"]
        factor = v / t["target"] if t["better"] == "lower" else t["target"] / v
        line = {"workload": w, "target": t["target"], "unit": t["what"], "measured": v, "met": met,
                "factor_off": factor, "best": summary[w]["best_jaxnets"]}
        if w == "C" and summary["C"]["torch_value"] is not None:
            line["torch"] = summary["C"]["torch_value"]
            line["faster_than_torch"] = v < summary["C"]["torch_value"]
            line["met"] = met and line["faster_than_torch"]
        verdicts.append(line)
    if ratios:
        def ratio(w):
            return ratios[w]["fused_loop"] if ratios[w]["fused_loop"] is not None else ratios[w]["jit"]

        worst_model = max(ratios, key=ratio)
        worst = ratio(worst_model)
        verdicts.append({"workload": "manual/autodiff", "target": 1.0, "unit": "ratio", "measured": worst,
                         "met": worst <= 1.0, "factor_off": worst,
                         "best": f"worst of {', '.join(ratios)}: {worst_model}, fused loop of many steps"})
    summary["targets"] = verdicts
    return summary


def format_table(result):
    lines = []
    units, titles = UNITS, TITLES
    lines += [titles[w] for w in ("A", "B", "C", "D") if any(r["workload"] == w for r in result["rows"])] + [""]
    lines.append("| workload | implementation | median | vs doc NumPy | % of limit |")
    lines.append("| --- | --- | ---: | ---: | ---: |")
    for w in ("A", "B", "C", "D"):
        for r in result["rows"]:
            if r["workload"] != w:
                continue
            vs = f"{r['vs_doc_numpy']:.1f}x" if r.get("vs_doc_numpy") else "—"
            pct = f"{r['pct_of_limit']:.0f}%" if w != "D" else "—"
            val = f"{r['value']:.0f}" if r["unit"] == "steps/s" else f"{r['value']:.3g}"
            lines.append(f"| {w} | {r['impl']} | {val} {units[w]} | {vs} | {pct} |")
    s = result["summary"]
    lines.append("")
    lines.append("| model | manual / autodiff, fused loop (many steps per call) "
                 "| manual / autodiff, one jit call per step |")
    lines.append("| --- | ---: | ---: |")
    names = {"A": "digits 784-10-10", "B": "TwoLayerNet 784-200-10", "C": "ConvNet", "D": "occupancy 5-5-1"}
    for w, r in s["manual_over_autodiff"].items():
        fl = f"{r['fused_loop']:.2f}" if r["fused_loop"] is not None else "—"
        lines.append(f"| {names[w]} | {fl} | {r['jit']:.2f} |")
    lines.append("")
    lines.append("| target | goal | measured (best jaxnets path) | verdict |")
    lines.append("| --- | ---: | ---: | --- |")
    for v in s["targets"]:
        goal = ("<= " if v["workload"] != "B" else ">= ") + f"{v['target']:g} {v['unit']}"
        meas = f"{v['measured']:.4g} {v['unit']}"
        if v["met"]:
            verdict = "met"
        else:
            verdict = f"missed by {v['factor_off']:.2f}x"
        if "torch" in v:
            verdict += f" (PyTorch {v['torch']:.3g} ms: {'faster' if v['faster_than_torch'] else 'slower'} than it)"
        lines.append(f"| {v['workload']} | {goal} | {meas} ({v['best']}) | {verdict} |")
    lim = result["limits"]
    lines.append("")
    lines.append(
        f"Machine limits (same run): float32 matmul {lim['matmul_gflops']:.0f} GFLOP/s "
        f"(JAX {lim['matmul_gflops_jax']:.0f}, NumPy {lim['matmul_gflops_numpy']:.0f}; {lim['matmul_n']}^3), "
        f"read bandwidth {lim['read_gbps']:.1f} GB/s; one read of A's X: {lim['read_x_float32_ms']:.2f} ms "
        f"float32, {lim['read_x_uint8_ms']:.2f} ms uint8. % of limit = max(FLOPs / matmul peak, "
        f"minimum bytes / bandwidth) / time."
    )
    return "\n".join(lines)
