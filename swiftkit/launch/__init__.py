"""Where a run runs: which node this process is, this machine's facts, the Slurm script. May import: errors, process."""
