"""Watchdogs: the safety rules the venues ask integrators to run, on the engine's deadline heap.

Each one is pure like the engine: it takes `now`, arms keys in the shared DeadlineHeap, returns
alert transitions and appends remedies (reconnect, REST lookup, reconcile) for the I/O shell.
"""
