"""For auditors: `iq explain` (text, dot, HTML), `iq diff`, and the cost model."""
