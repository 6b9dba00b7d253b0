"""Proof that it worked: questions asked through one engine, the identity scorecard, retention. May import: recipe, flags, datasets, render, results, run (phases), logparse, process, paths."""
