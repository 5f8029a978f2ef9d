"""Stages 4-6, planning: logical plan, circuit DAG with its ops and aggregates, release flags,
differencing guard, record linkage, passes, the plan file and its schema."""
