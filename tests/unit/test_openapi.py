"""The OpenAPI page lists exactly the routes the HTTP table serves."""
import json
from importlib import resources

from resonate.api.http.routes import ROUTES


def test_openapi_paths_match_the_route_table():
    doc = json.loads(resources.files("resonate.api.http").joinpath("openapi.json").read_text())
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops if p != "/ping"}
    served = {(r.method, r.path.replace(":path", "")) for r in ROUTES}
    assert documented == served
