"""What a user writes: the recipe models, YAML read with the line of every value, schema errors a person can act on. May import: errors, userfiles."""

# Public names a user's script may import from `swiftkit.recipe`, as before it became this package: kept
# for one release (0.2); inside swiftkit, import them from swiftkit.recipe.models.
from swiftkit.recipe.models import LoadedRecipe, Recipe, load_recipe  # noqa: E402, F401
