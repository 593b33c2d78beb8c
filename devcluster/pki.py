"""The dev control plane's keys and certificates, made fresh for every start.

A real API server insists on TLS, client certificates and a ServiceAccount signing key;
a throwaway CA per start means no secret outlives the data directory and nothing has to
be trusted system-wide. The CA is the operator's own (``tlsfiles.Authority``, which also
signs its report API's certificate outside a cluster); the signing key is made here.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from incluster_operator.tlsfiles import Authority, Pair

__all__ = [
    "API_DNS_NAMES",
    "VALIDITY_DAYS",
    "Authority",
    "Pair",
    "authority",
    "service_account_keys",
]

#: Certificates live as long as a dev cluster could plausibly run.
VALIDITY_DAYS = 7
#: The in-cluster names of the API server, as a kubelet-less pod would dial them.
API_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def authority(directory: Path) -> Authority:
    return Authority(directory, "devcluster-ca", VALIDITY_DAYS)


def service_account_keys(directory: Path) -> Pair:
    """The ServiceAccount token signing key (RSA, what every issuer verifier accepts).

    ``cert`` holds the public key, which is what ``--service-account-key-file`` reads.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pair = Pair(directory / "sa.pub", directory / "sa.key")
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pair.key.chmod(0o600)
    pair.cert.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pair
