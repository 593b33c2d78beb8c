"""The operator's settings, read once from env vars that the Helm chart renders.

Why env and not a config file: the chart sets them on the operator Deployment, the local
runner and the dev cluster set them in-process, and every one of them is visible in
``kubectl describe``. Each name is a module-level constant and listed in ``ENV_VARS`` so
the chart's tests can check that it sets only names this module reads.

A malformed value fails at start-up with ``SettingsError`` naming the variable and the
expected form: an operator that guesses a setting would mount the wrong volume into
every pod it creates.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from incluster import contract

PREFIX: Final = "INCLUSTER_OPERATOR_"

ENV_NAMESPACES: Final = PREFIX + "NAMESPACES"
ENV_OUTPUTS_CLAIM: Final = PREFIX + "OUTPUTS_CLAIM"
ENV_OUTPUTS_HOST_PATH: Final = PREFIX + "OUTPUTS_HOST_PATH"
ENV_OUTPUTS_ROOT: Final = PREFIX + "OUTPUTS_ROOT"
ENV_DATA_STORES: Final = PREFIX + "DATA_STORES"
ENV_DATA_ROOT: Final = PREFIX + "DATA_ROOT"
ENV_REFS_ROOT: Final = PREFIX + "REFS_ROOT"
ENV_CONTEXT_DIR: Final = PREFIX + "CONTEXT_DIR"
ENV_INLINE_ENV_MAX_BYTES: Final = PREFIX + "INLINE_ENV_MAX_BYTES"
ENV_CLUSTER_DOMAIN: Final = PREFIX + "CLUSTER_DOMAIN"
ENV_EVALUATOR_IN_CLUSTER: Final = PREFIX + "EVALUATOR_IN_CLUSTER"
ENV_ADDRESSING: Final = PREFIX + "ADDRESSING"
ENV_REPORT_AUDIENCE: Final = PREFIX + "REPORT_AUDIENCE"
ENV_REPORT_TOKEN_SECONDS: Final = PREFIX + "REPORT_TOKEN_SECONDS"
ENV_REPORT_LISTEN: Final = PREFIX + "REPORT_LISTEN"
ENV_REPORT_URL: Final = PREFIX + "REPORT_URL"
ENV_REPORT_TLS_DIR: Final = PREFIX + "REPORT_TLS_DIR"
ENV_SUMMARY_SYNC_SECONDS: Final = PREFIX + "SUMMARY_SYNC_SECONDS"
ENV_SUCCESS_POLICY: Final = PREFIX + "SUCCESS_POLICY"
ENV_POLYAXON_ENV: Final = PREFIX + "POLYAXON_ENV"
ENV_OUTPUTS_URL: Final = PREFIX + "OUTPUTS_URL"
ENV_UPLOAD_SECONDS: Final = PREFIX + "UPLOAD_SECONDS"

#: Every env var this module reads, with its meaning (the docs table and the chart's tests
#: use it; the chart must set no other INCLUSTER_OPERATOR_ name).
HELP: Final[dict[str, str]] = {
    ENV_NAMESPACES: "`*` (or empty) watches every namespace; else a comma-separated list.",
    ENV_OUTPUTS_CLAIM: "Outputs store as a PersistentVolumeClaim (ReadWriteMany in a cluster).",
    ENV_OUTPUTS_HOST_PATH: (
        "Outputs store as a hostPath directory (single node, dev cluster); excludes the "
        "claim. Neither set: an emptyDir per pod (outputs die with the pod)."
    ),
    ENV_OUTPUTS_ROOT: "Where the outputs store is mounted in pods; outputs paths start with it.",
    ENV_OUTPUTS_URL: (
        "Outputs in an object store: `s3://bucket/prefix`, `gs://...` or `az://...`. Pods "
        "still write under the local outputs path (an emptyDir unless a claim or hostPath "
        "is set) and the SDK uploads there; credentials come from the pods' own environment "
        "(never copied by the operator). Outputs refs become URLs under it."
    ),
    ENV_UPLOAD_SECONDS: "How often the SDK uploads new event lines to the outputs URL.",
    ENV_DATA_STORES: (
        'JSON object: store name -> `{"claim": "<pvc>"}` or `{"hostPath": "<dir>"}`; '
        "mounted read-only when an Experiment lists the name in `spec.data`."
    ),
    ENV_DATA_ROOT: "Where data stores are mounted in pods (`<root>/<store name>`).",
    ENV_REFS_ROOT: "Where referenced outputs are mounted read-only (`<root>/experiments/<ref>`).",
    ENV_CONTEXT_DIR: "Where the context ConfigMap is mounted in every container.",
    ENV_INLINE_ENV_MAX_BYTES: (
        "Largest JSON value (cluster definition, declarations, paths) inlined in env; larger "
        "ones are read from the mounted files, keeping pods O(1) in the replica count."
    ),
    ENV_CLUSTER_DOMAIN: "The cluster's DNS domain, for replica addresses.",
    ENV_EVALUATOR_IN_CLUSTER: "`true` lists the evaluator in the cluster definition.",
    ENV_ADDRESSING: (
        "`dns` (a real cluster) or `loopback` (one machine: each replica gets its own "
        "127.x.y.z address and keeps its declared port)."
    ),
    ENV_REPORT_AUDIENCE: (
        "Audience of the projected ServiceAccount token every pod gets; the report API "
        "accepts no token of another audience (so a pod's token is useless to the API server)."
    ),
    ENV_REPORT_TOKEN_SECONDS: (
        "Lifetime of that projected token (>= 600, Kubernetes' minimum); the kubelet rotates it."
    ),
    ENV_REPORT_LISTEN: "`host:port` the operator's HTTPS report API listens on.",
    ENV_REPORT_URL: (
        "The report API's URL as pods reach it (the chart: its Service); empty: "
        "`https://<listen address>` (one machine)."
    ),
    ENV_REPORT_TLS_DIR: (
        "Directory with `tls.crt`, `tls.key` and `ca.crt` of the report API (the chart "
        "mounts its generated Secret); empty: a self-signed pair is made at start-up."
    ),
    ENV_SUMMARY_SYNC_SECONDS: "How often a replica patches its tracking summary into the status.",
    ENV_SUCCESS_POLICY: "Success policy when the spec names none: `default` or `allWorkers`.",
    ENV_POLYAXON_ENV: (
        "`true` also injects the seed's `POLYAXON_*` env vars (same values) into pods whose "
        "Experiment does not set `spec.polyaxonEnv`. Default `false`: a real Polyaxon "
        "client in the image takes them as a Polyaxon cluster and would call its API."
    ),
}
ENV_VARS: Final = tuple(HELP)

Addressing = Literal["dns", "loopback"]
SuccessPolicyName = Literal["default", "allWorkers"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class SettingsError(ValueError):
    """A setting's env var is malformed; the message names the variable and the fix."""


#: URL schemes of the object stores the SDK uploads to (through fsspec).
OBJECT_STORE_SCHEMES: Final = ("s3", "gs", "gcs", "az", "abfs", "abfss")


@dataclass(frozen=True)
class VolumeSource:
    """Where a store lives: a PVC claim, a hostPath directory, or (data stores) a URL."""

    claim: str | None = None
    host_path: str | None = None
    #: An object-store URL: nothing is mounted, the pod is given the URL.
    url: str | None = None

    def to_k8s(self) -> dict[str, object]:
        """The pod ``volumes[]`` entry's source part (without the name)."""
        if self.claim is not None:
            return {"persistentVolumeClaim": {"claimName": self.claim}}
        if self.host_path is not None:
            return {"hostPath": {"path": self.host_path, "type": "DirectoryOrCreate"}}
        # No store configured: outputs live as long as the pod (documented dev default).
        return {"emptyDir": {}}


@dataclass(frozen=True)
class Settings:
    """Everything the render layer and the reconcile loop need to know about the installation."""

    #: None watches every namespace.
    namespaces: tuple[str, ...] | None = None
    outputs: VolumeSource = field(default_factory=VolumeSource)
    outputs_root: str = "/outputs"
    data_stores: Mapping[str, VolumeSource] = field(default_factory=dict)
    data_root: str = "/data"
    refs_root: str = "/refs"
    context_dir: str = contract.DEFAULT_CONTEXT_DIR
    inline_env_max_bytes: int = 4096
    cluster_domain: str = "cluster.local"
    evaluator_in_cluster: bool = False
    addressing: Addressing = "dns"
    report_audience: str = "incluster.dev"
    report_token_seconds: int = 600
    report_listen: str = "0.0.0.0:8443"
    report_url: str = ""
    report_tls_dir: str = ""
    #: The report API's CA bundle (PEM), filled in at start-up from ``report_tls_dir`` (or
    #: the self-signed pair); it travels to pods in the context ConfigMap. Not an env var.
    report_ca_pem: str = ""
    summary_sync_seconds: float = 10.0
    success_policy: SuccessPolicyName = "default"
    #: Inject the seed's POLYAXON_* names too, unless the Experiment says otherwise.
    polyaxon_env: bool = False
    #: Object-store URL of the outputs root (None: the outputs volume is the store).
    outputs_url: str | None = None
    upload_seconds: float = 10.0


def _absolute_path(name: str, value: str) -> str:
    if not value.startswith("/") or "\x00" in value or ".." in value.split("/"):
        raise SettingsError(f"{name}={value!r} must be an absolute path without '..'")
    return value.rstrip("/") or "/"


def _int(name: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} must be an integer >= {minimum}") from None
    if number < minimum:
        raise SettingsError(f"{name}={value!r} must be an integer >= {minimum}")
    return number


def _positive_float(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise SettingsError(f"{name}={value!r} must be a number of seconds > 0")
    return number


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={value!r} must be true or false")


def _store_url(name: str, value: str) -> str:
    """``scheme://bucket[/prefix]`` with a known scheme; no credentials, no trailing '/'."""
    scheme, sep, rest = value.partition("://")
    bucket = rest.split("/", 1)[0]
    if not sep or scheme not in OBJECT_STORE_SCHEMES or not bucket:
        raise SettingsError(
            f"{name}={value!r} must be an object-store URL such as s3://bucket/prefix "
            f"(schemes: {', '.join(OBJECT_STORE_SCHEMES)})"
        )
    if "@" in bucket or "?" in value or ".." in rest.split("/"):
        raise SettingsError(
            f"{name}={value!r}: no credentials, query or '..' in the URL; pods take "
            "credentials from their own environment (AWS_*, GOOGLE_*, AZURE_* or workload "
            "identity)"
        )
    return value.rstrip("/")


def outputs_url_option(name: str, value: str) -> str:
    """Check an outputs URL given elsewhere (``incluster run --outputs``) like the setting."""
    return _store_url(name, value)


def _namespaces(value: str) -> tuple[str, ...] | None:
    if value.strip() in ("", "*"):
        return None
    names = tuple(sorted({n.strip() for n in value.split(",") if n.strip()}))
    for n in names:
        if not _DNS_LABEL.match(n):
            raise SettingsError(
                f"{ENV_NAMESPACES} holds {n!r}, which is not a namespace name; use '*' for "
                "every namespace or a comma-separated list of DNS labels"
            )
    return names


def _volume(name: str, claim: str | None, host_path: str | None) -> VolumeSource:
    if claim is not None and host_path is not None:
        raise SettingsError(f"{name}: set a claim or a hostPath, not both")
    if claim is not None and not _DNS_SUBDOMAIN.match(claim):
        raise SettingsError(f"{name}: claim {claim!r} is not a valid PersistentVolumeClaim name")
    if host_path is not None:
        host_path = _absolute_path(name, host_path)
    return VolumeSource(claim=claim, host_path=host_path)


def _data_stores(value: str) -> dict[str, VolumeSource]:
    form = 'a JSON object like {"imagenet": {"claim": "imagenet-pvc"}, "raw": {"hostPath": "/d"}}'
    if not value.strip():
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        raise SettingsError(f"{ENV_DATA_STORES} must be {form}") from None
    if not isinstance(parsed, dict):
        raise SettingsError(f"{ENV_DATA_STORES} must be {form}")
    stores: dict[str, VolumeSource] = {}
    for store, source in sorted(parsed.items()):
        where = f"{ENV_DATA_STORES}[{store!r}]"
        if not _DNS_LABEL.match(store):
            raise SettingsError(f"{where}: store names must be DNS labels (a-z, 0-9, '-')")
        if (
            not isinstance(source, dict)
            or set(source) - {"claim", "hostPath", "url"}
            or len(source) != 1
            or not all(isinstance(v, str) and v for v in source.values())
        ):
            raise SettingsError(
                f"{where} must be {{'claim': name}}, {{'hostPath': path}} or {{'url': 's3://...'}}"
            )
        if "url" in source:
            stores[store] = VolumeSource(url=_store_url(where, source["url"]))
            continue
        stores[store] = _volume(where, source.get("claim"), source.get("hostPath"))
    return stores


def _audience(value: str) -> str:
    if not value.isprintable() or " " in value or len(value) > 253:
        raise SettingsError(
            f"{ENV_REPORT_AUDIENCE}={value!r} must be one token audience (no spaces), "
            "e.g. incluster.dev"
        )
    return value


def split_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) -> (host, port); raises ``SettingsError``."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(
            f"{ENV_REPORT_LISTEN}={value!r} must be host:port, e.g. 0.0.0.0:8443 "
            "(port 0 picks a free one)"
        )
    return host, int(port)


def _listen(value: str) -> str:
    split_listen(value)
    return value


def _report_url(value: str) -> str:
    if value and not re.match(r"^https://[^/\s?#]+(/[^\s?#]*)?$", value):
        raise SettingsError(
            f"{ENV_REPORT_URL}={value!r} must be an https:// URL, e.g. "
            "https://incluster-operator.incluster-system.svc:8443"
        )
    return value.rstrip("/")


def from_env(environ: Mapping[str, str]) -> Settings:
    """Build the settings from an environment (``os.environ`` in production).

    Unset or empty variables take the defaults of ``Settings``.
    """

    def get(name: str) -> str | None:
        value = environ.get(name)
        return value if value else None

    defaults = Settings()
    unknown = sorted(k for k in environ if k.startswith(PREFIX) and k not in ENV_VARS)
    if unknown:
        raise SettingsError(
            f"unknown setting(s) {unknown}: this operator reads only {list(ENV_VARS)}"
        )
    addressing = get(ENV_ADDRESSING) or defaults.addressing
    if addressing not in ("dns", "loopback"):
        raise SettingsError(f"{ENV_ADDRESSING}={addressing!r} must be 'dns' or 'loopback'")
    success_policy = get(ENV_SUCCESS_POLICY) or defaults.success_policy
    if success_policy not in ("default", "allWorkers"):
        raise SettingsError(
            f"{ENV_SUCCESS_POLICY}={success_policy!r} must be 'default' or 'allWorkers'"
        )
    domain = get(ENV_CLUSTER_DOMAIN) or defaults.cluster_domain
    if not _DNS_SUBDOMAIN.match(domain):
        raise SettingsError(f"{ENV_CLUSTER_DOMAIN}={domain!r} must be a DNS name")
    optional = {
        ENV_OUTPUTS_ROOT: defaults.outputs_root,
        ENV_DATA_ROOT: defaults.data_root,
        ENV_REFS_ROOT: defaults.refs_root,
        ENV_CONTEXT_DIR: defaults.context_dir,
    }
    paths = {name: _absolute_path(name, get(name) or default) for name, default in optional.items()}
    return Settings(
        namespaces=_namespaces(environ.get(ENV_NAMESPACES, "")),
        outputs=_volume(
            f"{ENV_OUTPUTS_CLAIM}/{ENV_OUTPUTS_HOST_PATH}",
            get(ENV_OUTPUTS_CLAIM),
            get(ENV_OUTPUTS_HOST_PATH),
        ),
        outputs_root=paths[ENV_OUTPUTS_ROOT],
        data_stores=_data_stores(environ.get(ENV_DATA_STORES, "")),
        data_root=paths[ENV_DATA_ROOT],
        refs_root=paths[ENV_REFS_ROOT],
        context_dir=paths[ENV_CONTEXT_DIR],
        inline_env_max_bytes=_int(
            ENV_INLINE_ENV_MAX_BYTES,
            get(ENV_INLINE_ENV_MAX_BYTES) or str(defaults.inline_env_max_bytes),
            0,
        ),
        cluster_domain=domain,
        evaluator_in_cluster=_bool(
            ENV_EVALUATOR_IN_CLUSTER, environ.get(ENV_EVALUATOR_IN_CLUSTER, "")
        ),
        addressing="loopback" if addressing == "loopback" else "dns",
        report_audience=_audience(get(ENV_REPORT_AUDIENCE) or defaults.report_audience),
        report_token_seconds=_int(
            ENV_REPORT_TOKEN_SECONDS,
            get(ENV_REPORT_TOKEN_SECONDS) or str(defaults.report_token_seconds),
            600,
        ),
        report_listen=_listen(get(ENV_REPORT_LISTEN) or defaults.report_listen),
        report_url=_report_url(get(ENV_REPORT_URL) or ""),
        report_tls_dir=(
            _absolute_path(ENV_REPORT_TLS_DIR, tls_dir)
            if (tls_dir := get(ENV_REPORT_TLS_DIR))
            else ""
        ),
        summary_sync_seconds=_positive_float(
            ENV_SUMMARY_SYNC_SECONDS,
            get(ENV_SUMMARY_SYNC_SECONDS) or str(defaults.summary_sync_seconds),
        ),
        success_policy="allWorkers" if success_policy == "allWorkers" else "default",
        polyaxon_env=_bool(ENV_POLYAXON_ENV, environ.get(ENV_POLYAXON_ENV, "")),
        outputs_url=_store_url(ENV_OUTPUTS_URL, url) if (url := get(ENV_OUTPUTS_URL)) else None,
        upload_seconds=_positive_float(
            ENV_UPLOAD_SECONDS, get(ENV_UPLOAD_SECONDS) or str(defaults.upload_seconds)
        ),
    )
