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
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) -}}
{{- end -}}

{{- define "aiguillage.webhookService" -}}
{{- printf "%s-webhook" (include "aiguillage.fullname" .) -}}
{{- end -}}

{{/* Guards: fail early, with a message that says what to change. */}}
{{- define "aiguillage.validate" -}}
{{- if gt (int .Values.operator.replicas) 1 -}}
{{- fail "operator.replicas must be 0 or 1: the operator runs standalone, without peering" -}}
{{- end -}}
{{- if and .Values.webhook.enabled (eq .Values.webhook.certificate.source "cert-manager") (not (.Capabilities.APIVersions.Has "cert-manager.io/v1")) -}}
{{- fail "webhook.certificate.source=cert-manager needs cert-manager (cert-manager.io/v1) in the cluster; use source=helm or install cert-manager" -}}
{{- end -}}
{{- end -}}
