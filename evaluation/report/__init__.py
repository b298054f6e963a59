"""Evaluation reports, one module per thing made.

``data`` (what a report shows, as plain data), ``format`` (values, deltas and labels every
renderer shows alike), ``plots`` (PNG figures), ``html`` (one version's self-contained page),
``markdown`` (its short summary) and ``index_page`` (the page across all versions). None of
them imports MLflow: ``experiments.version_report`` gathers the data from the registry and logs
the files.
"""
