"""The memory and time plan of a checked recipe and what `auto` chooses from it; known models and cards as data. May import: recipe, checks, datasets, launch, render, process, paths."""
