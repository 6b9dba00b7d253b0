"""swiftkit: recipes, supervision and verification around ms-swift LoRA fine-tunes."""

__version__ = "0.1.0"
