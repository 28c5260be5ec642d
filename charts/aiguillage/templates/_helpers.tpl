{{/* Name of the chart's objects: the release name, or "aiguillage" for a release of that name. */}}
{{- define "aiguillage.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aiguillage.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "aiguillage.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "aiguillage.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "aiguillage.sidecarImage" -}}
{{- $image := .Values.injection.sidecar.image -}}
{{- printf "%s:%s" (default .Values.image.repository $image.repository) (default (default .Chart.AppVersion .Values.image.tag) $image.tag) -}}
{{- end -}}

{{- define "aiguillage.webhookService" -}}
{{- printf "%s-webhook" (include "aiguillage.fullname" .) -}}
{{- end -}}

{{/* The service account's full user name, as the API server sees it. */}}
{{- define "aiguillage.serviceAccountUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "aiguillage.fullname" .) -}}
{{- end -}}

{{/* Guards: fail early, with a message that says what to change. */}}
{{- define "aiguillage.validate" -}}
{{- if and .Values.injection.enabled (not .Values.webhook.enabled) -}}
{{- fail "injection.enabled=true needs webhook.enabled=true: the operator's webhook injects the sidecar" -}}
{{- end -}}
{{- if eq (int .Values.injection.sidecar.port) (int .Values.injection.sidecar.healthPort) -}}
{{- fail "injection.sidecar.port and injection.sidecar.healthPort must differ" -}}
{{- end -}}
{{- if and .Values.webhook.enabled (eq .Values.webhook.certificate.source "cert-manager") (not (.Capabilities.APIVersions.Has "cert-manager.io/v1")) -}}
{{- fail "webhook.certificate.source=cert-manager needs cert-manager (cert-manager.io/v1) in the cluster; use source=helm or install cert-manager" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) -}}
{{- fail "metrics.serviceMonitor.enabled=true needs the Prometheus Operator CRDs (monitoring.coreos.com/v1); install them or leave it false" -}}
{{- end -}}
{{- end -}}
