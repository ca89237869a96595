"""One Kafka security configuration, mapped identically onto Faust and every aiokafka client."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import faust
import pytest

from tacit.core.errors import TacitError
from tacit.core.kafka import client_options, credentials
from tacit.core.settings import TacitSettings
from tacit.ingest.app import faust_app


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed CA certificate, made with the openssl command line."""
    directory = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
                    "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.pem")],
                   check=True, capture_output=True)
    return directory / "ca.pem"


def test_plaintext_is_the_default() -> None:
    settings = TacitSettings()

    assert credentials(settings) is None
    assert client_options(settings) == {"security_protocol": "PLAINTEXT"}


def test_sasl_scram_over_tls_reaches_every_client_the_same_way(ca_file: Path) -> None:
    settings = TacitSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                             kafka_sasl_username="tacit", kafka_sasl_password="s3cret", kafka_ssl_cafile=ca_file)

    options = client_options(settings)

    assert {k: options[k] for k in ("security_protocol", "sasl_mechanism", "sasl_plain_username",
                                    "sasl_plain_password")} == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "tacit",
        "sasl_plain_password": "s3cret"}
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    app = faust_app(settings, "kafka-1:9093", "tacit-test")
    assert isinstance(app.conf.broker_credentials, faust.SASLCredentials)
    assert app.conf.broker_credentials.username == "tacit"


def test_tls_alone_and_replication_reach_faust(ca_file: Path) -> None:
    settings = TacitSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=ca_file, kafka_replication_factor=3)

    assert client_options(settings)["security_protocol"] == "SSL"
    assert faust_app(settings, "kafka-1:9093", "tacit-test").conf.topic_replication_factor == 3


def test_sasl_without_credentials_names_the_settings() -> None:
    settings = TacitSettings(kafka_security_protocol="SASL_PLAINTEXT")

    with pytest.raises(TacitError, match="TACIT_KAFKA_SASL_USERNAME and TACIT_KAFKA_SASL_PASSWORD"):
        client_options(settings)
