"""What a run leaves on disk: the run record, checkpoints, weight files, exports, model fingerprints, TARGETs. May import: recipe, render, gguf, logparse, errors, paths."""
