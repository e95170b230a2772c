"""Settings: defaults, parsing, and one line naming the variable for every bad value."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from adapters.fake_keyset import FakeKeySet
from domain.policy import SubjectPolicy
from entrypoints.settings import (
    VARIABLES,
    Settings,
    SettingsError,
    check_service_files,
    check_tls_files,
    load_settings,
)
from tests.tls_peer import TestCa

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def test_defaults_are_the_spec_table() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.token_file == f"{SA_DIR}/token"
    assert settings.ca_file == f"{SA_DIR}/ca.crt"
    assert settings.api_server == "https://kubernetes.default.svc"
    assert settings.issuers == ("https://kubernetes.default.svc.cluster.local",)
    assert settings.discovery_url == (
        "https://kubernetes.default.svc/.well-known/openid-configuration"
    )
    assert settings.jwks_url is None
    assert settings.audiences == ("https://kubernetes.default.svc.cluster.local",)
    assert settings.verifier == "jwks"
    assert settings.jwks_file is None
    assert settings.leeway_seconds == 60
    assert settings.policy == SubjectPolicy()
    assert not settings.policy.allows("system:serviceaccount:default:be-sa")
    assert settings.be2_url == "http://be2"
    assert settings.expose_token is True
    assert (settings.log_level, settings.log_format) == ("INFO", "json")


def test_empty_values_mean_the_default() -> None:
    assert load_settings(dict.fromkeys(VARIABLES, "  ")) == Settings()


def test_comma_lists_are_parsed_trimmed_and_deduplicated() -> None:
    settings = load_settings(
        {
            "KSA_ISSUER": " https://a.example , https://b.example,,https://a.example ",
            "KSA_AUDIENCES": "be2, https://kubernetes.default.svc.cluster.local",
            "KSA_ALLOWED_SUBJECTS": (
                "system:serviceaccount:default:be-sa, system:serviceaccount:ops:*"
            ),
        }
    )
    assert settings.issuers == ("https://a.example", "https://b.example")
    assert settings.audiences == ("be2", "https://kubernetes.default.svc.cluster.local")
    assert settings.policy.allows("system:serviceaccount:default:be-sa")
    assert settings.policy.allows("system:serviceaccount:ops:anything")
    assert not settings.policy.allows("system:serviceaccount:default:be2-sa")


def test_every_other_value_is_read() -> None:
    settings = load_settings(
        {
            "KSA_TOKEN_FILE": "/t/token",
            "KSA_CA_FILE": "/t/ca.crt",
            "KSA_API_SERVER": "https://127.0.0.1:6443/",
            "KSA_DISCOVERY_URL": "https://127.0.0.1:6443/.well-known/openid-configuration",
            "KSA_JWKS_URL": "https://127.0.0.1:6443/openid/v1/jwks",
            "KSA_VERIFIER": "TokenReview",
            "KSA_LEEWAY_SECONDS": "2.5",
            "KSA_BE2_URL": "https://be2.example:8443/",
            "KSA_BE2_CA_FILE": "/t/be2-ca.crt",
            "KSA_TLS_CERT_FILE": "/t/tls.crt",
            "KSA_TLS_KEY_FILE": "/t/tls.key",
            "KSA_EXPOSE_TOKEN": "No",
            "KSA_LOG_LEVEL": "debug",
            "KSA_LOG_FORMAT": "TEXT",
            "KSA_WORKERS": "4",
        }
    )
    assert settings.token_file == "/t/token"
    assert settings.ca_file == "/t/ca.crt"
    assert settings.api_server == "https://127.0.0.1:6443"
    assert settings.jwks_url == "https://127.0.0.1:6443/openid/v1/jwks"
    assert settings.verifier == "tokenreview"
    assert settings.leeway_seconds == 2.5
    assert settings.be2_url == "https://be2.example:8443"
    assert settings.be2_ca_file == "/t/be2-ca.crt"
    assert (settings.tls_cert_file, settings.tls_key_file) == ("/t/tls.crt", "/t/tls.key")
    assert settings.expose_token is False
    assert (settings.log_level, settings.log_format) == ("DEBUG", "text")
    assert settings.workers == 4


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False), ("no", False)],
)
def test_booleans(raw: str, expected: bool) -> None:
    assert load_settings({"KSA_EXPOSE_TOKEN": raw}).expose_token is expected


BAD_VALUES = [
    ("KSA_VERIFIER", "jwt"),
    ("KSA_VERIFIER", "token-review"),
    ("KSA_LEEWAY_SECONDS", "-1"),
    ("KSA_LEEWAY_SECONDS", "sixty"),
    ("KSA_LEEWAY_SECONDS", "nan"),
    ("KSA_LEEWAY_SECONDS", "inf"),
    ("KSA_LEEWAY_SECONDS", "86400"),
    ("KSA_EXPOSE_TOKEN", "maybe"),
    ("KSA_EXPOSE_TOKEN", "on"),
    ("KSA_LOG_LEVEL", "verbose"),
    ("KSA_LOG_FORMAT", "yaml"),
    ("KSA_WORKERS", "0"),
    ("KSA_WORKERS", "2.5"),
    ("KSA_WORKERS", "65"),
    ("KSA_ALLOWED_SUBJECTS", "be-sa"),
    ("KSA_ALLOWED_SUBJECTS", "system:serviceaccount:default:be-sa,system:serviceaccount:*"),
    ("KSA_ALLOWED_SUBJECTS", "system:serviceaccount:Default:be"),
    ("KSA_API_SERVER", "http://kubernetes.default.svc"),
    ("KSA_API_SERVER", "kubernetes.default.svc"),
    ("KSA_API_SERVER", "https://"),
    ("KSA_API_SERVER", "https://user:secret@kubernetes.default.svc"),
    ("KSA_API_SERVER", "https://kubernetes.default.svc?x=1"),
    ("KSA_API_SERVER", "https://kubernetes.default.svc:99999"),
    ("KSA_DISCOVERY_URL", "http://kubernetes.default.svc/.well-known/openid-configuration"),
    ("KSA_DISCOVERY_URL", "ftp://x/y"),
    ("KSA_JWKS_URL", "http://127.0.0.1/openid/v1/jwks"),
    ("KSA_JWKS_URL", "https://host/jwks#frag"),
    ("KSA_BE2_URL", "ftp://be2"),
    ("KSA_BE2_URL", "be2:8000"),
    ("KSA_BE2_URL", "http://be2 x"),
    ("KSA_ISSUER", ","),
    ("KSA_AUDIENCES", " , ,"),
    ("KSA_TOKEN_FILE", "/a\x00b"),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_a_bad_value_is_one_line_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}: ")
    assert "\n" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_jwks_file_cannot_be_combined_with_tokenreview() -> None:
    with pytest.raises(SettingsError, match=r"^KSA_JWKS_FILE: .*KSA_VERIFIER=tokenreview"):
        load_settings({"KSA_JWKS_FILE": "/keys.json", "KSA_VERIFIER": "tokenreview"})


def test_a_long_bad_value_is_not_echoed_in_full() -> None:
    pasted = "eyJ" + "A" * 500
    with pytest.raises(SettingsError) as caught:
        load_settings({"KSA_VERIFIER": pasted})
    assert pasted not in str(caught.value)
    assert len(str(caught.value)) < 200


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    with pytest.raises(AttributeError):
        settings.verifier = "tokenreview"  # type: ignore[misc]


# --- start-up file checks ---------------------------------------------------------------


def test_be2_outside_a_cluster_stops_on_the_missing_ca_in_one_line() -> None:
    if os.path.exists(f"{SA_DIR}/ca.crt"):
        pytest.skip("running inside a pod")
    with pytest.raises(SettingsError) as caught:
        check_service_files(load_settings({}), "be2")
    message = str(caught.value)
    assert message.startswith(f"KSA_CA_FILE: the cluster CA certificate {SA_DIR}/ca.crt")
    assert "does not exist" in message
    assert "KSA_JWKS_FILE" in message  # the hint for running outside a pod
    assert "\n" not in message


def test_be2_needs_its_token_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("pem")
    settings = load_settings({"KSA_CA_FILE": str(ca), "KSA_TOKEN_FILE": str(tmp_path / "no")})
    with pytest.raises(SettingsError, match=r"^KSA_TOKEN_FILE: be2's service account token"):
        check_service_files(settings, "be2")


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    settings = load_settings({"KSA_CA_FILE": str(tmp_path)})
    with pytest.raises(SettingsError, match=r"^KSA_CA_FILE: .* is a directory"):
        check_service_files(settings, "be2")


def _unreadable_file(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        ca = tmp_path / "ca.crt"
        ca.write_text("pem")
        ca.chmod(0)
        return ca
    # Root reads past any mode bits; /proc/self/mem exists, is a file, and reading its first
    # byte fails (EIO) for root too.
    return Path("/proc/self/mem")


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    settings = load_settings({"KSA_CA_FILE": str(_unreadable_file(tmp_path))})
    with pytest.raises(SettingsError, match=r"^KSA_CA_FILE: .* is not readable \(.+\)$"):
        check_service_files(settings, "be2")


def test_a_jwks_file_replaces_the_ca_and_token(tmp_path: Path) -> None:
    keys = tmp_path / "jwks.json"
    settings = load_settings({"KSA_JWKS_FILE": str(keys)})
    with pytest.raises(SettingsError, match=r"^KSA_JWKS_FILE: the JWKS file .* does not exist$"):
        check_service_files(settings, "be2")
    keys.write_text('{"keys": []}')
    with pytest.raises(SettingsError, match=r"^KSA_JWKS_FILE: .*no usable signing key"):
        check_service_files(settings, "be2")  # an empty JWKS cannot verify anything
    keys.write_text(json.dumps(FakeKeySet().jwks()))
    check_service_files(settings, "be2")  # no CA, no token needed


def test_be_starts_without_its_token() -> None:
    check_service_files(load_settings({"KSA_TOKEN_FILE": "/nonexistent/token"}), "be")


@pytest.mark.parametrize("value", ["59", "86401", "soon", "nan"])
def test_the_jwks_refresh_bound_is_checked(value: str) -> None:
    with pytest.raises(SettingsError, match=r"^KSA_JWKS_REFRESH_SECONDS: "):
        load_settings({"KSA_JWKS_REFRESH_SECONDS": value})


def test_the_jwks_refresh_bound_defaults_to_five_minutes() -> None:
    assert load_settings({}).jwks_refresh_seconds == 300
    assert load_settings({"KSA_JWKS_REFRESH_SECONDS": "120"}).jwks_refresh_seconds == 120


# --- TLS: be2 serving it, be verifying it ------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"KSA_TLS_CERT_FILE": "/t/tls.crt"}, r"^KSA_TLS_KEY_FILE: not set, but KSA_TLS_CERT_FILE"),
        ({"KSA_TLS_KEY_FILE": "/t/tls.key"}, r"^KSA_TLS_CERT_FILE: not set, but KSA_TLS_KEY_FILE"),
        ({"KSA_BE2_URL": "https://be2"}, r"^KSA_BE2_CA_FILE: not set, but KSA_BE2_URL is https"),
        ({"KSA_BE2_CA_FILE": "/t/ca.crt"}, r"^KSA_BE2_CA_FILE: set, but KSA_BE2_URL .* plain http"),
    ],
)
def test_tls_settings_come_in_pairs(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        load_settings(environ)
    assert "\n" not in str(caught.value)


def tls_settings(cert: Path | str, key: Path | str) -> Settings:
    return load_settings({"KSA_TLS_CERT_FILE": str(cert), "KSA_TLS_KEY_FILE": str(key)})


def test_a_usable_certificate_and_key_are_served(tmp_path: Path) -> None:
    cert, key = TestCa(tmp_path).issue("be2", ["be2", "127.0.0.1"])
    served = check_tls_files(tls_settings(cert, key))
    assert served is not None
    assert (served.cert_file, served.key_file) == (str(cert), str(key))
    assert check_tls_files(load_settings({})) is None  # plain HTTP


def test_tls_files_missing_unreadable_or_not_a_pair_are_one_line(tmp_path: Path) -> None:
    ca = TestCa(tmp_path)
    cert, key = ca.issue("be2", ["be2"])
    other_cert, _ = ca.issue("other", ["other"])
    cases = [
        (tls_settings(tmp_path / "none.crt", key), r"^KSA_TLS_CERT_FILE: .* does not exist$"),
        (tls_settings(cert, tmp_path / "none.key"), r"^KSA_TLS_KEY_FILE: .* does not exist$"),
        (tls_settings(cert, tmp_path), r"^KSA_TLS_KEY_FILE: .* is a directory"),
        (
            tls_settings(cert, _unreadable_file(tmp_path)),
            r"^KSA_TLS_KEY_FILE: .* is not readable \(.+\)$",
        ),
        (tls_settings(other_cert, key), r"^KSA_TLS_CERT_FILE, KSA_TLS_KEY_FILE: .* not a PEM"),
        (tls_settings(key, cert), r"^KSA_TLS_CERT_FILE, KSA_TLS_KEY_FILE: .* not a PEM"),
    ]
    for settings, message in cases:
        with pytest.raises(SettingsError, match=message) as caught:
            check_tls_files(settings)
        assert "\n" not in str(caught.value)


def test_an_encrypted_key_is_refused_without_a_prompt(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    cert, key = TestCa(tmp_path).issue("be2", ["be2"])
    loaded = serialization.load_pem_private_key(key.read_bytes(), None)
    key.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(SettingsError, match=r"^KSA_TLS_CERT_FILE, KSA_TLS_KEY_FILE: .*encrypted"):
        check_tls_files(tls_settings(cert, key))


def test_be_needs_its_be2_ca_file_when_it_is_set(tmp_path: Path) -> None:
    environ = {"KSA_BE2_URL": "https://be2", "KSA_BE2_CA_FILE": str(tmp_path / "ca.crt")}
    with pytest.raises(SettingsError, match=r"^KSA_BE2_CA_FILE: be2's CA certificate .* does not"):
        check_service_files(load_settings(environ), "be")
