"""go-plugin AutoMTLS, for hosts that set ``PLUGIN_CLIENT_CERT`` (Airflow's never does).

The plugin answers with a fresh self-signed server certificate whose DER goes into field 6 of the
handshake line as *unpadded* standard base64 (the host decodes with Go's ``RawStdEncoding`` and
rejects ``=`` padding). The certificate is shaped like go-plugin's own (CN/SAN ``localhost``, CA,
server+client auth, 30 s back-dated) so the host pins and verifies it like a Go plugin's, but its key
is ECDSA P-256, not P-521: BoringSSL-based clients (grpcio) offer no ecdsa_secp521r1_sha512 and
cannot verify a P-521 server at all, while Go's crypto/tls verifies either.

grpcio limitation: a grpcio (BoringSSL) server that requests client certificates offers no
ecdsa_secp521r1_sha512 signature algorithm, and go-plugin's client certificate is P-521, so under
TLS 1.3 the Go host sends no certificate and the handshake fails. The plugin therefore serves
server-authenticated TLS only and does not verify the host's certificate; ``serve_plugin`` logs this.
``cryptography`` is imported only here, only when a host asks for AutoMTLS.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass

LIMITATION = (
    "AutoMTLS: serving TLS with the plugin's own certificate, but not verifying the host's client "
    "certificate: grpcio cannot verify go-plugin's P-521 client certificates (BoringSSL offers no "
    "ecdsa_secp521r1_sha512 for client authentication)"
)


@dataclass(frozen=True)
class ServerCert:
    """The plugin's TLS identity: PEM for grpcio, DER for the handshake line."""

    key_pem: bytes
    cert_pem: bytes
    cert_der: bytes

    @property
    def handshake_field(self) -> str:
        """Field 6 of the handshake line: standard base64 of the DER, without padding."""
        return base64.b64encode(self.cert_der).decode("ascii").rstrip("=")


def generate_server_cert() -> ServerCert:
    """A self-signed certificate shaped like go-plugin's ``generateCert``."""
    import secrets

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pybundle"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1 or 1)
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(hours=262980))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ServerCert(
        key_pem, cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.DER)
    )
