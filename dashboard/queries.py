"""Moved: the queries are in monitor/store/reads.py, the pure helpers in monitor/domain/history.py.

Only the re-export dashboard/format.py still imports is left; delete this file once it imports
state_class from monitor.domain.history.
"""

from monitor.domain.history import state_class

__all__ = ["state_class"]
