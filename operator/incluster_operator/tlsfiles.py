"""The report API's serving certificate: the mounted one, or a self-signed pair made now.

Why two sources: in a cluster the chart generates the CA and certificate at install time
and mounts its Secret into the operator as a volume (the operator needs no right on
Secrets, and the admin no manual step); run anywhere else (the dev cluster, tests, a
laptop) there is nothing to mount, so a CA and a certificate for the listen address are
made at start-up and live as long as the process. Either way the CA bundle is what the
context ConfigMap carries to the pods, which verify the API against it.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

FILE_CERT: Final = "tls.crt"
FILE_KEY: Final = "tls.key"
FILE_CA: Final = "ca.crt"


class TLSError(RuntimeError):
    """The mounted TLS files are missing or unusable; the message names the file."""


@dataclass(frozen=True)
class ServingFiles:
    """Paths of a certificate chain and its key, and the CA bundle (PEM text) for clients."""

    cert: Path
    key: Path
    ca_pem: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(f"cannot load {self.cert} and {self.key}: {exc}") from None
        return context


def mounted(directory: str | os.PathLike[str]) -> ServingFiles:
    """The chart's Secret as mounted: ``tls.crt``, ``tls.key`` and ``ca.crt``."""
    root = Path(directory)
    for name in (FILE_CERT, FILE_KEY, FILE_CA):
        if not (root / name).is_file():
            raise TLSError(
                f"{root / name} is missing: the report API's TLS directory needs {FILE_CERT}, "
                f"{FILE_KEY} and {FILE_CA} (the chart mounts them from its Secret)"
            )
    ca_pem = (root / FILE_CA).read_text(encoding="ascii")
    return ServingFiles(cert=root / FILE_CERT, key=root / FILE_KEY, ca_pem=ca_pem)


@functools.cache
def self_signed(hosts: tuple[str, ...], days: int = 30) -> ServingFiles:
    """A new CA and a certificate it signs for ``hosts`` (names or IP addresses).

    The key is written to a private temporary directory (mode 0700, file 0600) because
    ``ssl`` loads keys from files only; the CA key is never written anywhere. One pair
    per process: an operator restarted in the same process (tests, the dev cluster's
    embedding) keeps the CA its experiments' context ConfigMaps already carry.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "incluster report API CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    directory = Path(tempfile.mkdtemp(prefix="incluster-report-tls-"))
    cert_path, key_path = directory / FILE_CERT, directory / FILE_KEY
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return ServingFiles(cert=cert_path, key=key_path, ca_pem=ca_pem)
