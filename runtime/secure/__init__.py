"""Secure execution on MPyC: the plan's secure ops, record linkage, the oblivious sort, fast
randomness, and the only module that reveals."""
