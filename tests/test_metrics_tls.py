"""Metrics on TCP: TLS with required client certificates, or an explicit insecure flag."""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
import sys
import time

import pytest

from acsnet.lab.host import REPO
from acsnet.lab.zookeeper import free_port


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def pki(tmp_path):
    d = str(tmp_path)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=acsnet-test-ca",
            "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr")
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(extra + "\n")
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key", "-CAcreateserial",
                "-days", "1", "-extfile", f"{d}/{name}.ext", "-out", f"{d}/{name}.pem")
    return d


def fetch(port: int, context: ssl.SSLContext | None) -> tuple[int, str]:
    connection = (http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5) if context
                  else http.client.HTTPConnection("127.0.0.1", port, timeout=5))
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    return response.status, response.read().decode()


def fetch_once_listening(port: int, context: ssl.SSLContext | None, wait: float = 10.0) -> tuple[int, str]:
    """The plugin starts its listener in the worker, a moment after the socket answers."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return fetch(port, context)
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.1)


def test_metrics_over_tls_need_a_client_certificate(plugins, embedded_url, pki):
    port = free_port()
    plugins("ipam", "--store", embedded_url, "--metrics-address", f"127.0.0.1:{port}",
            "--metrics-tls-cert", f"{pki}/server.pem", "--metrics-tls-key", f"{pki}/server.key",
            "--metrics-tls-ca", f"{pki}/ca.pem")
    client = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    client.load_cert_chain(f"{pki}/client.pem", f"{pki}/client.key")
    status, text = fetch_once_listening(port, client)
    assert status == 200 and "acsnet_store_connected" in text

    anonymous = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        fetch(port, anonymous)
    with pytest.raises((http.client.HTTPException, ConnectionResetError, OSError)):
        fetch(port, None)


@pytest.mark.parametrize("extra, message", [
    ([], "refusing plain HTTP metrics on TCP"),
    (["--metrics-tls-cert", "/x.pem"], "needs all of --metrics-tls-cert, --metrics-tls-key and --metrics-tls-ca"),
])
def test_plain_tcp_metrics_are_refused_unless_insecure_is_explicit(tmp_path, extra, message):
    result = subprocess.run([sys.executable, "-m", "acsnet.cli", "serve", "ipam", "--plugin-dir", str(tmp_path),
                             "--store", f"file://{tmp_path}/s.db", "--metrics-address", "127.0.0.1:9",
                             *extra], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "acsnet.sock")


def test_insecure_metrics_when_asked(plugins, embedded_url):
    port = free_port()
    plugins("ipam", "--store", embedded_url, "--metrics-address", f"127.0.0.1:{port}", "--metrics-insecure")
    status, text = fetch_once_listening(port, None)
    assert status == 200 and "acsnet_requests" in text
