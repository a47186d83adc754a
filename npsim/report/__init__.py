"""Reports: ``report.html`` with ``figures/`` for one run, and side-by-side comparisons."""

from npsim.report.compare import compare_table, write_compare_report
from npsim.report.run_report import write_run_report
from npsim.report.sweep_report import write_sweep_report

__all__ = ["compare_table", "write_compare_report", "write_run_report", "write_sweep_report"]
