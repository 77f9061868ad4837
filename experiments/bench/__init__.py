"""The benchmark (`jaxnets bench`): the documents' workloads timed side by side in one run.

`harness` times (medians, round-robin, machine limits), `workloads` defines A-D and times
each through one skeleton, `report` turns rows into verdicts and tables, `run` is the command.
"""
from experiments.bench.run import main, run

__all__ = ["main", "run"]
