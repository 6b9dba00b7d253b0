"""recipe_yaml: the YAML `swiftkit import` prints, read by people and loaded back by swiftkit."""
from __future__ import annotations

import yaml

from swiftkit.importer.command import import_command
from swiftkit.importer.recipe_yaml import to_yaml
from test_command import BLOG_SCRIPT


def test_blog_yaml_is_readable_and_loads_back():
    result = import_command(BLOG_SCRIPT)
    text = to_yaml(result, "../recipe.schema.json")
    lines = text.splitlines()
    assert lines[0] == "# yaml-language-server: $schema=../recipe.schema.json"
    assert lines[1].startswith("# note: --train_type was renamed --tuner_type")
    assert yaml.safe_load(text) == result.recipe
    keys = [line.split(":")[0] for line in lines if line and not line.startswith(("#", " "))]
    assert keys == ["description", "model", "identity", "datasets", "lora", "train", "gpu", "output", "swift"]
    assert "visible_devices: [0]" in text
