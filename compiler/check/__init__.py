"""Stages 2-3, checking: the catalog, name and type checking (IQ2xx), the disclosure rules
(IQ3xx), the release rule registry and the observer model."""
