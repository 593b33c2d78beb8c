{{/* Names, labels and the operator's command line, shared by every template. */}}

{{- define "incluster.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "incluster.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "incluster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "incluster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "incluster.labels" -}}
{{ include "incluster.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "incluster.serviceAccountName" -}}
{{- default (include "incluster.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "incluster.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The operator's exact command line. --standalone: no peering objects (hence replicas <= 1);
the namespaces given here are the ones the RBAC templates grant, from the same values.
*/}}
{{- define "incluster.command" -}}
- kopf
- run
- --standalone
{{- if .Values.watch.allNamespaces }}
- --all-namespaces
{{- else }}
{{- range .Values.watch.namespaces }}
- --namespace={{ . }}
{{- end }}
{{- end }}
{{- if eq .Values.logLevel "debug" }}
- --verbose
{{- else if eq .Values.logLevel "warning" }}
- --quiet
{{- end }}
- -m
- incluster_operator.handlers
- --liveness=http://0.0.0.0:{{ .Values.health.port }}/healthz
{{- end -}}
