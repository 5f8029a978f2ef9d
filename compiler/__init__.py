"""InsightQL compiler: .iq source -> checked query -> MPC plan. Never imports the runtime."""
__version__ = "0.1.0"
