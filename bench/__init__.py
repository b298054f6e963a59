"""Benchmarks that print tables; never run as tests.

They are programs (``python -m bench.<name>``), so the package sets the offline switches for the
process before any benchmark imports a library that reads them (``rag_model.offline``).
"""

from rag_model.offline import apply_offline_defaults

apply_offline_defaults()
