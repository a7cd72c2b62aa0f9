"""Builds resonate/api/http/openapi.json from the reference's OpenAPI contract plus our corrections.

The reference document drifts from the reference code (and from us) in places; the corrections
below make /docs describe what this server really does. Run: python tools/build_openapi.py REF.yml
"""
import json
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parent.parent / "resonate" / "api" / "http" / "openapi.json"


def correct(doc: dict) -> dict:
    doc["info"] = {"title": "resonate-py", "version": "0.8.2",
                   "description": "Resonate durable promises, schedules, locks and tasks (reference v0.8.2 API)."}
    doc["servers"] = [{"url": "http://localhost:8001", "description": "resonate dev"}]
    paths = doc["paths"]
    paths["/ping"] = {"get": {"summary": "Liveness", "operationId": "ping",
                              "responses": {"200": {"description": "ok", "content": {"application/json": {
                                  "schema": {"type": "object", "properties": {"status": {"type": "string"}}}}}}}}}
    schemas = doc["components"]["schemas"]
    # responses: what the server really emits (omitempty rules of spec 1.1-1.7)
    schemas["Promise"]["required"] = ["id", "state", "param", "value", "timeout"]
    schemas["Callback"]["properties"]["rootPromiseId"] = {"type": "string", "description": "always empty"}
    schemas["Callback"]["required"] = ["id", "promiseId", "rootPromiseId", "timeout", "createdOn"]
    schemas["Task"]["properties"]["rootPromiseId"] = {"type": "string"}
    schemas["Task"]["required"] = ["id", "counter", "timeout", "rootPromiseId"]
    schedule = schemas["Schedule"]
    schedule["properties"] = {("desc" if k == "description" else k): v for k, v in schedule["properties"].items()}
    schedule["required"] = ["id", "cron", "tags", "promiseId", "promiseTimeout", "promiseParam", "nextRunTime",
                            "createdOn"]
    for path, methods in paths.items():
        for op in methods.values():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            _relax(body)
            if path == "/schedules" and "properties" in body:
                props = body["properties"]
                props.pop("idempotencyKey", None)  # read from the idempotency-key header only
                if "description" in props:
                    props["desc"] = props.pop("description")
                op.setdefault("parameters", []).append(
                    {"in": "header", "name": "idempotency-key", "schema": {"type": "string"}})
            for param in op.get("parameters", []):
                if param.get("in") == "path" and param.get("name") == "id":
                    param["description"] = "the id; may contain '/' (the rest of the path is the id)"
    # the deprecated routes the server still serves, with the promise id in the body
    for old, new in (("/callbacks", "/promises/callback/{id}"), ("/subscriptions", "/promises/subscribe/{id}")):
        op = json.loads(json.dumps(paths[new]["post"]))
        op["deprecated"] = True
        op["operationId"] += "Deprecated"
        op["parameters"] = [p for p in op.get("parameters", []) if p.get("in") != "path"]
        body = op["requestBody"]["content"]["application/json"]["schema"]
        body.setdefault("properties", {})["promiseId"] = {"type": "string"}
        body.setdefault("required", []).append("promiseId")
        paths[old] = {"post": op}
    return doc


def _relax(schema: dict) -> None:
    """Integers such as timeout and ttl default to 0 in the server; they are not required."""
    if not isinstance(schema, dict):
        return
    if "required" in schema:
        schema["required"] = [r for r in schema["required"] if r not in ("timeout", "ttl", "promiseTimeout")]
        if not schema["required"]:
            del schema["required"]
    for sub in schema.get("properties", {}).values():
        _relax(sub)


if __name__ == "__main__":
    doc = correct(yaml.safe_load(Path(sys.argv[1]).read_text()))
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT}")
