"""What the installed ms-swift accepts: its flag catalog (read from ms-swift in a child) and the renames across versions. May import: errors, paths, process."""
