"""be2's docs page: Swagger UI from the package's own assets, and examples true to the API."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from adapters.fake_keyset import FakeKeySet
from domain.errors import REASONS, Forbidden, Rejected, Unavailable
from entrypoints.be2 import Authenticated, AuthFailure, create_app
from entrypoints.docs_page import ASSETS, ASSETS_PATH
from tests.unit.test_be2_app import DownKeyProvider, make_container

ROOT = Path(__file__).resolve().parents[2]
VENDOR_SCRIPT = ROOT / "tools" / "swagger-ui" / "vendor.py"


def _vendor() -> ModuleType:
    spec = importlib.util.spec_from_file_location("swagger_ui_vendor", VENDOR_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def keyset() -> FakeKeySet:
    return FakeKeySet()


@pytest.fixture
def client(keyset: FakeKeySet) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(make_container(keyset))) as test_client:
        yield test_client


def _operation(client: TestClient[Litestar], path: str) -> dict[str, Any]:
    operation: dict[str, Any] = client.get("/schema/openapi.json").json()["paths"][path]["get"]
    return operation


def _examples(operation: dict[str, Any], status: int) -> list[dict[str, Any]]:
    content = operation["responses"][str(status)]["content"]["application/json"]
    return [example["value"] for example in content["examples"].values()]


# --- the page and its assets ----------------------------------------------------------------


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
def test_the_page_loads_only_assets_the_service_serves_itself(
    client: TestClient[Litestar], page: str
) -> None:
    html = client.get(page).text
    loaded = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert loaded, html
    assert all(url.startswith(f"{ASSETS_PATH}/") for url in loaded), loaded
    for url in loaded:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.content == (ASSETS / url.rsplit("/", 1)[1]).read_bytes()
    assert "cdn." not in html
    assert "SwaggerUIBundle(" in html


def test_the_assets_are_the_locked_swagger_ui_dist_unchanged() -> None:
    vendor = _vendor()
    assert vendor.problems() == []
    version, _ = vendor.locked()
    assert f'"version": "{version}"' in (ASSETS / "SOURCE.json").read_text()
    # The licence travels with the code it covers.
    assert "Apache License" in (ASSETS / "LICENSE").read_text()


def test_a_hand_edited_asset_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vendor = _vendor()
    copy = tmp_path / "swagger_ui"
    copy.mkdir()
    for path in ASSETS.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "swagger-ui.css").write_text("body { color: red }")
    (copy / "NOTICE").unlink()
    monkeypatch.setattr(vendor, "TARGET", copy)
    monkeypatch.setattr(vendor, "MANIFEST", copy / "SOURCE.json")
    assert sorted(vendor.problems()) == [
        f"NOTICE is missing from {copy}",
        f"swagger-ui.css differs from swagger-ui-dist {vendor.locked()[0]}: run make swagger-ui",
    ]


def test_assets_need_no_token_and_unknown_ones_are_404(client: TestClient[Litestar]) -> None:
    bundle = client.get(f"{ASSETS_PATH}/swagger-ui-bundle.js", headers={"Authorization": "x"})
    assert bundle.status_code == 200
    assert "javascript" in bundle.headers["content-type"]
    assert client.get(f"{ASSETS_PATH}/../../validate-auth").status_code in (401, 404)
    assert client.get(f"{ASSETS_PATH}/nope.js").status_code == 404


# --- examples true to what be2 answers ------------------------------------------------------


def test_the_200_example_is_an_authenticated_identity_shaped_as_the_real_answer(
    client: TestClient[Litestar], keyset: FakeKeySet
) -> None:
    (example,) = _examples(_operation(client, "/validate-auth"), 200)
    identity = msgspec.convert(example, Authenticated)
    assert identity.authenticated is True
    assert identity.subject == f"system:serviceaccount:{identity.namespace}:be-sa"
    token = keyset.mint(namespace="default", service_account="be-sa", audiences=["be2"])
    real = client.get("/validate-auth", headers={"Authorization": f"Bearer {token}"}).json()
    assert list(real) == list(example)


def test_every_rejection_reason_has_a_401_example_with_authenticated_false(
    client: TestClient[Litestar],
) -> None:
    for path in ("/validate-auth", "/protected"):
        examples = _examples(_operation(client, path), 401)
        for example in examples:
            failure = msgspec.convert(example, AuthFailure)
            assert failure.authenticated is False
            assert issubclass(REASONS[failure.reason], Rejected)
        rejected = {reason for reason, cls in REASONS.items() if issubclass(cls, Rejected)}
        assert {example["reason"] for example in examples} == rejected


def test_the_missing_token_example_is_the_real_answer(client: TestClient[Litestar]) -> None:
    examples = _examples(_operation(client, "/validate-auth"), 401)
    (example,) = [e for e in examples if e["reason"] == "missing_token"]
    assert client.get("/validate-auth").json() == example


def test_the_403_example_is_forbidden_and_worded_as_the_real_answer(
    client: TestClient[Litestar], keyset: FakeKeySet
) -> None:
    (example,) = _examples(_operation(client, "/protected"), 403)
    assert REASONS[example["reason"]] is Forbidden
    token = keyset.mint(namespace="default", service_account="be2-sa", audiences=["be2"])
    real = client.get("/protected", headers={"Authorization": f"Bearer {token}"}).json()
    assert real == example


def test_the_503_examples_are_the_real_generic_answer_with_retry_after() -> None:
    with TestClient(create_app(make_container(DownKeyProvider()))) as down:
        operation = _operation(down, "/validate-auth")
        examples = _examples(operation, 503)
        token = FakeKeySet().mint(namespace="default", service_account="be-sa")
        real = down.get("/validate-auth", headers={"Authorization": f"Bearer {token}"})
    assert real.status_code == 503
    (example,) = [e for e in examples if e["reason"] == real.json()["reason"]]
    assert real.json() == example
    assert all(issubclass(REASONS[e["reason"]], Unavailable) for e in examples)
    assert all(e["authenticated"] is False for e in examples)
    header = operation["responses"]["503"]["headers"]["Retry-After"]
    assert header["schema"]["examples"] == [int(real.headers["retry-after"])]
