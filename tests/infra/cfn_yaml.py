"""Load CloudFormation/SAM YAML, short-form intrinsic tags included.

``!Ref X`` becomes ``{"Ref": "X"}``, ``!GetAtt A.B`` becomes ``{"Fn::GetAtt": ["A", "B"]}`` and every other
``!Name value`` becomes ``{"Fn::Name": value}``: the long form CloudFormation itself uses, so code that walks
a template sees one shape whichever form the author wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class CfnLoader(yaml.SafeLoader):
    """A safe YAML loader that understands CloudFormation's short-form tags."""


def _construct_value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node.id}", node.start_mark)


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value = _construct_value(loader, node)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    """Parse the CloudFormation/SAM template at ``path`` into plain dicts and lists."""
    with path.open(encoding="utf-8") as f:
        document = yaml.load(f, Loader=CfnLoader)  # CfnLoader is a SafeLoader
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a template (top level is {type(document).__name__})")
    return document


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """The template's resources of one type, by logical id."""
    return {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }
