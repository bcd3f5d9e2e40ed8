"""ablate.analysis: log parsing, the parquet results store, statistics, figures and reports.

Never imports ray or torch: anyone can analyse results or upstream logs without a cluster.
"""


class InputError(ValueError):
    """Bad user input (a missing folder, an unreadable log set): shown as one line, no traceback."""
