{{/*
Every permission the operator holds, in one place. The ClusterRole (all namespaces) or
each namespace's Role carries "incluster.rules.namespaced"; the cluster-scoped reads kopf
itself makes are in "incluster.rules.cluster". A test compares these rules with the
requests the operator really sends: add a verb here only with the code that uses it.
*/}}

{{- define "incluster.rules.namespaced" -}}
# The Experiments it reconciles; kopf patches finalizers and its progress annotations;
# delete is for ttlSecondsAfterFinished. The operator alone writes Experiments: pods
# report through its HTTPS report API and hold no Kubernetes right from incluster.
- apiGroups: [incluster.dev]
  resources: [experiments]
  verbs: [get, list, watch, patch, delete]
- apiGroups: [incluster.dev]
  resources: [experiments/status]
  verbs: [patch]
# One pod per replica, watched for the Experiment's status; get: the report API checks
# that a caller's pod exists with the uid its token names.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
# One headless Service and one context ConfigMap per Experiment (deleted with it by
# their owner reference; get adopts them after a restart).
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, create, delete]
# Gang scheduling: one PodGroup per Experiment that names spec.schedulingPolicy.scheduler.
# get: read back on a conflict; delete (also on Services and ConfigMaps): a child an
# earlier Experiment of the same name left behind (deleted, not yet collected) is removed.
- apiGroups: [scheduling.x-k8s.io, scheduling.volcano.sh]
  resources: [podgroups]
  verbs: [get, create, delete]
# Events on the Experiment (POST only, never patch).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{- define "incluster.rules.cluster" -}}
# TokenReview (cluster-scoped): the report API checks a pod's projected token.
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
# kopf watches CRDs to notice the Experiment CRD (re)appearing.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if not .Values.watch.allNamespaces }}
# With a namespace list, kopf lists and watches namespaces to learn which exist.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- end -}}
