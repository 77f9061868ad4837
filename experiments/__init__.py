"""The app on top of the library: the `jaxnets` command (`experiments.cli`), one script per
experiment of the source documents and cs231n, run folders, plots, `reproduce`, `predict`, the
gradcheck report and the benchmark (`experiments.bench`). Nothing in `jaxnets` imports it."""
