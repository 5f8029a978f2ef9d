"""InsightQL runtime: executes compiled plans on MPyC parties. The only layer that imports MPyC."""
