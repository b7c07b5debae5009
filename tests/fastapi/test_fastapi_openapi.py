"""The OpenAPI schema declares where the key goes, and a client that follows the
schema (as Swagger UI's "Authorize" does) gets in with a real key."""

from typing import Annotated, Any

import pytest
from fastapi import APIRouter, FastAPI, Security
from fastapi_support import Env, TestClient, build_app

from apikeys import APIKey
from apikeys.fastapi import PROBLEM_RESPONSES, APIKeyAuth


def _schema(app: FastAPI) -> dict[str, Any]:
    with TestClient(app) as client:
        schema: dict[str, Any] = client.get("/openapi.json").json()
    return schema


def test_the_schemes_are_declared(env: Env) -> None:
    schema = _schema(build_app(APIKeyAuth(env.manager)))
    assert schema["components"]["securitySchemes"] == {
        "APIKeyBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: `Authorization: Bearer <key>`.",
        },
        "APIKeyHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An API key in the `X-API-Key` header.",
        },
    }


def test_operations_list_the_schemes_as_alternatives_with_their_scopes(env: Env) -> None:
    paths = _schema(build_app(APIKeyAuth(env.manager)))["paths"]
    assert paths["/orders/{order_id}"]["get"]["security"] == [
        {"APIKeyBearer": ["orders:read"]},
        {"APIKeyHeader": ["orders:read"]},
    ]
    refund = paths["/orders/{order_id}/refund"]["post"]["security"]
    assert [sorted(next(iter(req.values()))) for req in refund] == [
        ["orders:read", "orders:refund"]
    ] * 2
    assert paths["/me"]["get"]["security"] == [{"APIKeyBearer": []}, {"APIKeyHeader": []}]
    assert paths["/admin"]["get"]["security"] == [
        {"APIKeyBearer": ["admin:all"]},
        {"APIKeyHeader": ["admin:all"]},
    ]
    assert "security" not in paths["/public"]["get"]
    # The scheme parameters are documentation only: no header or query parameters leak in.
    assert "parameters" not in paths["/me"]["get"]


def _orders_app(auth: APIKeyAuth) -> FastAPI:
    """An app protected by ``auth`` alone (no RequiredKey, which documents defaults)."""
    app = FastAPI()
    auth.install(app)

    @app.get("/orders/{order_id}")
    async def order(
        order_id: int, key: Annotated[APIKey, Security(auth, scopes=["orders:read"])]
    ) -> int:
        return order_id

    return app


def _swagger_credentials(scheme: dict[str, Any], key: str) -> dict[str, Any]:
    """What Swagger UI sends once a scheme is authorized with ``key``."""
    if scheme["type"] == "http" and scheme["scheme"] == "bearer":
        return {"headers": {"Authorization": f"Bearer {key}"}}
    if scheme["type"] == "apiKey" and scheme["in"] == "header":
        return {"headers": {scheme["name"]: key}}
    if scheme["type"] == "apiKey" and scheme["in"] == "query":
        return {"params": {scheme["name"]: key}}
    raise AssertionError(f"unexpected scheme {scheme}")


@pytest.mark.parametrize(
    "auth_args",
    [
        {},
        {"api_key_header": "X-Token", "scheme_name": "Shop"},
        {"authorization_header": None},
        {"api_key_header": None, "query_param": "key"},
    ],
    ids=["default", "custom-header", "header-only", "bearer-and-query"],
)
def test_authorize_with_each_declared_scheme_works(env: Env, auth_args: dict[str, Any]) -> None:
    app = _orders_app(APIKeyAuth(env.manager, **auth_args))
    raw = env.issue(["orders:read"])
    with TestClient(app) as client:
        schema = client.get("/openapi.json").json()
        schemes = schema["components"]["securitySchemes"]
        operation = schema["paths"]["/orders/{order_id}"]["get"]
        assert {name for req in operation["security"] for name in req} == set(schemes)
        for name, scheme in schemes.items():
            assert name.startswith(auth_args.get("scheme_name", "APIKey"))
            response = client.get("/orders/3", **_swagger_credentials(scheme, raw))
            assert response.status_code == 200, (name, response.text)
            denied = client.get("/orders/3", **_swagger_credentials(scheme, raw + "x"))
            assert denied.status_code == 401


def test_custom_names_are_documented(env: Env) -> None:
    app = _orders_app(
        APIKeyAuth(
            env.manager,
            authorization_header=None,
            api_key_header="X-Token",
            query_param="key",
            scheme_name="Shop",
        )
    )
    schemes = _schema(app)["components"]["securitySchemes"]
    assert schemes == {
        "ShopHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Token",
            "description": "An API key in the `X-Token` header.",
        },
        "ShopQuery": {
            "type": "apiKey",
            "in": "query",
            "name": "key",
            "description": "An API key in the `key` query parameter.",
        },
    }


def test_problem_responses_can_be_documented(env: Env) -> None:
    auth = APIKeyAuth(env.manager)
    router = APIRouter(responses=PROBLEM_RESPONSES)

    @router.get("/orders")
    async def orders(key: Annotated[APIKey, Security(auth, scopes=["orders:read"])]) -> str:
        return key.owner

    app = FastAPI()
    auth.install(app)
    app.include_router(router)
    responses = _schema(app)["paths"]["/orders"]["get"]["responses"]
    assert {"401", "403", "429", "503"} <= set(responses)
    assert "application/problem+json" in responses["401"]["content"]
