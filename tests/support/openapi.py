"""Validate answers against Alpaca's published OpenAPI 3.0 documents (../shared/alpaca/*.json).

OpenAPI 3.0 schemas are nearly JSON Schema: ``nullable: true`` becomes a ``"null"`` type (and
a null in an enum), and each ``#/components/...`` reference points into the document it came
from. A response is found by method, path template (a literal segment before a ``{param}``)
and status code; an answer whose status the spec documents without a body has nothing to check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_FILES = ("trading-api.json", "market-data-api.json")


def specs_dir() -> Path | None:
    """``shared/alpaca`` beside the clone (CI), or beside the worktrees' folder."""
    for base in (REPO_ROOT.parent, REPO_ROOT.parent.parent):
        found = base / "shared" / "alpaca"
        if all((found / name).is_file() for name in SPEC_FILES):
            return found
    return None


def _convert(node: Any, uri: str) -> Any:
    if isinstance(node, list):
        return [_convert(item, uri) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _convert(value, uri) for key, value in node.items() if key not in ("nullable", "example",
                                                                                    "discriminator", "xml")}
    if isinstance(out.get("$ref"), str) and out["$ref"].startswith("#"):
        out["$ref"] = uri + out["$ref"]
    if node.get("nullable") is True:
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        if "$ref" in out or "allOf" in out or "oneOf" in out or "anyOf" in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    literal_segments: int
    responses: dict[str, Any]
    uri: str


class OpenAPI:
    """Alpaca's two documents, ready to validate an answer by (method, path, status)."""

    def __init__(self, folder: Path) -> None:
        resources = []
        self.operations: list[Operation] = []
        for name in SPEC_FILES:
            uri = f"urn:alpaca:{name}"
            document = _convert(json.loads((folder / name).read_text(encoding="utf-8")), uri)
            resources.append((uri, Resource.from_contents(document, default_specification=DRAFT202012)))
            for template, operations in document["paths"].items():
                pattern = re.compile("^" + "/".join("[^/]+" if part.startswith("{") else re.escape(part)
                                                    for part in template.split("/")) + "/?$")
                literal = sum(1 for part in template.split("/") if part and not part.startswith("{"))
                for method, operation in operations.items():
                    if isinstance(operation, dict) and "responses" in operation:
                        self.operations.append(Operation(method.upper(), template, pattern, literal,
                                                         operation["responses"], uri))
        self.registry: Registry = Registry().with_resources(resources)

    def operation(self, method: str, path: str) -> Operation | None:
        found = [op for op in self.operations if op.method == method and op.pattern.match(path)]
        return max(found, key=lambda op: op.literal_segments) if found else None

    def schema_violations(self, name: str, body: Any, document: str = "trading-api.json") -> list[str]:
        """What is wrong with `body` as the named component schema (e.g. "Order")."""
        validator = jsonschema.Draft202012Validator({"$ref": f"urn:alpaca:{document}#/components/schemas/{name}"},
                                                    registry=self.registry)
        return [f"{name}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]

    def violations(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """What is wrong with this answer by the spec (empty: nothing); an undocumented path or
        status is a violation too."""
        operation = self.operation(method, path)
        if operation is None:
            return [f"{method} {path}: no such operation in the spec"]
        response = operation.responses.get(str(status))
        if response is None:
            return [f"{method} {operation.template} {status}: status not documented"]
        schema = ((response.get("content") or {}).get("application/json") or {}).get("schema")
        if schema is None:
            return []  # documented without a body schema: nothing more to check
        validator = jsonschema.Draft202012Validator(schema, registry=self.registry)
        return [f"{method} {operation.template} {status}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in validator.iter_errors(body)]
