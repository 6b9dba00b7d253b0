"""Every check before a run (data, distributed launch, flags against the catalog), collected into one report. May import: recipe, flags, gguf, datasets, launch, render, paths, userfiles."""
