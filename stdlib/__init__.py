"""InsightQL standard library: types, scalar functions, catalog templates and policy presets."""
