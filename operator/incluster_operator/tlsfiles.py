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


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    """Create the file 0600 from the start: a key is never readable by others, even briefly."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


class Authority:
    """A fresh CA whose key stays in memory; it issues serving and client certificates.

    Only the CA certificate (``ca.crt``) and the issued pairs are written, in
    ``directory``. The dev cluster's control plane uses it too, for its API server and
    its users.
    """

    def __init__(self, directory: Path, name: str = "incluster CA", days: int = 30) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._days = days
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
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
            .sign(self._key, hashes.SHA256())
        )
        self.pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        self.cert = directory / FILE_CA
        self.cert.write_text(self.pem, encoding="ascii")

    def issue(
        self,
        stem: str,
        common_name: str,
        *,
        org: str | None = None,
        server: bool = False,
        hosts: tuple[str, ...] = (),
    ) -> Pair:
        """``<stem>.crt`` and ``<stem>.key``: a serving certificate for ``hosts`` (names or
        IP addresses), or a client one whose CN is the user and O the group."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if org:
            subject.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=self._days))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        names: list[x509.GeneralName] = []
        for host in dict.fromkeys(hosts):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        pair = Pair(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(
            pair.key,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        return pair


@functools.cache
def self_signed(hosts: tuple[str, ...], days: int = 30) -> ServingFiles:
    """A new CA and a certificate it signs for ``hosts`` (names or IP addresses).

    The key is written to a private temporary directory (mode 0700, file 0600) because
    ``ssl`` loads keys from files only; the CA key is never written anywhere. One pair
    per process: an operator restarted in the same process (tests, the dev cluster's
    embedding) keeps the CA its experiments' context ConfigMaps already carry.
    """
    directory = Path(tempfile.mkdtemp(prefix="incluster-report-tls-"))
    ca = Authority(directory, "incluster report API CA", days)
    pair = ca.issue(FILE_CERT.removesuffix(".crt"), hosts[0], server=True, hosts=hosts)
    return ServingFiles(cert=pair.cert, key=pair.key, ca_pem=ca.pem)
