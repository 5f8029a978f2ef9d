"""Approvals, the per-party ledger, and what a party checks and records around a run."""
