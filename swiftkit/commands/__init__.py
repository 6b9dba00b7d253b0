"""One module per CLI verb; each exposes a plain function returning an exit code."""
