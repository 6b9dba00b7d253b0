"""`swift sft` commands and shell scripts -> recipes: the shell reader, the flag table, the YAML writer. May import: recipe, flags, errors."""
