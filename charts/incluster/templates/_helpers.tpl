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

{{/* The report API: its Service, the URL pods use, and its TLS Secret. */}}
{{- define "incluster.reportService" -}}
{{- printf "%s-report" (include "incluster.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "incluster.reportURL" -}}
{{- printf "https://%s.%s.svc:%d" (include "incluster.reportService" .) .Release.Namespace (.Values.report.port | int) -}}
{{- end -}}

{{- define "incluster.reportTLSSecret" -}}
{{- printf "%s-report-tls" (include "incluster.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The serving certificate's data (tls.crt, tls.key, ca.crt) as YAML: kept from the installed
Secret on upgrade (lookup), generated on install; no step for the admin. Rotation: delete
the Secret and run `helm upgrade` (docs/install.md). Memoised per render in .Values so the
Secret and the Deployment's checksum see the same pair.
*/}}
{{- define "incluster.reportTLS" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "incluster.reportTLSSecret" .) -}}
{{- if and $existing (index ($existing.data | default dict) "tls.crt") -}}
{{- toYaml $existing.data -}}
{{- else -}}
{{- if not (hasKey .Values "_reportTLS") -}}
{{- $service := include "incluster.reportService" . -}}
{{- $ns := .Release.Namespace -}}
{{- $ca := genCA (printf "%s-ca" $service) (int .Values.report.certificateDays) -}}
{{- $names := list $service (printf "%s.%s" $service $ns) (printf "%s.%s.svc" $service $ns) (printf "%s.%s.svc.%s" $service $ns .Values.clusterDomain) -}}
{{- $cert := genSignedCert $service nil $names (int .Values.report.certificateDays) $ca -}}
{{- $_ := set .Values "_reportTLS" (dict "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) "ca.crt" ($ca.Cert | b64enc)) -}}
{{- end -}}
{{- toYaml (index .Values "_reportTLS") -}}
{{- end -}}
{{- end -}}
