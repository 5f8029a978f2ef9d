"""Starting parties: `iq run` (one process per party), the parties file, MPyC set-up, TLS
certificates, and one party's run from its data to its result."""
