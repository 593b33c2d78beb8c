{{/*
Every permission the operator holds, in one place. The ClusterRole (all namespaces) or
each namespace's Role carries "incluster.rules.namespaced"; the cluster-scoped reads kopf
itself makes are in "incluster.rules.cluster". A test compares these rules with the
requests the operator really sends: add a verb here only with the code that uses it.
*/}}

{{- define "incluster.rules.namespaced" -}}
# The Experiments it reconciles; kopf patches finalizers and its progress annotations.
# get on both is also what each Experiment's own Role grants: Kubernetes lets the
# operator create a Role only with permissions it holds itself.
- apiGroups: [incluster.dev]
  resources: [experiments]
  verbs: [get, list, watch, patch, delete]
- apiGroups: [incluster.dev]
  resources: [experiments/status]
  verbs: [get, patch]
# One pod per replica, watched for the Experiment's status.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete, patch]
# One headless Service and one context ConfigMap per Experiment.
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, create, delete, patch]
# The per-Experiment scoped identity: ServiceAccount, Role, RoleBinding and the Secret
# its token is bound to (deleting the Secret revokes the token).
- apiGroups: [""]
  resources: [serviceaccounts, secrets]
  verbs: [get, create, delete, patch]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, create, delete, patch]
# TokenRequest: mint the short-lived token.
- apiGroups: [""]
  resources: [serviceaccounts/token]
  verbs: [create]
# Gang scheduling: one PodGroup per Experiment that names spec.schedulingPolicy.scheduler
# (created, read back on a conflict, deleted when an earlier Experiment of the same name
# left it; otherwise garbage collection removes it with its owner).
- apiGroups: [scheduling.x-k8s.io, scheduling.volcano.sh]
  resources: [podgroups]
  verbs: [get, create, delete]
# kopf posts handler outcomes as Events on the Experiment (POST only, never patch).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{- define "incluster.rules.cluster" -}}
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
