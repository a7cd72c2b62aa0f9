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
    # the server defaults a missing timeout to 0 instead of requiring it
    for schema in doc.get("components", {}).get("schemas", {}).values():
        if isinstance(schema, dict) and "required" in schema:
            if "timeout" in schema["required"] and "param" in schema.get("properties", {}):
                schema["required"] = [r for r in schema["required"] if r != "timeout"]
    return doc


if __name__ == "__main__":
    doc = correct(yaml.safe_load(Path(sys.argv[1]).read_text()))
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT}")
