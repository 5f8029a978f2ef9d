"""The plaintext steps of a plan, outside MPC: an owner's local steps on its own rows,
the public stage on revealed values (both run by the runtime), and the test oracle."""
