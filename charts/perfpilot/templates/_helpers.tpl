{{/*
The chart's name, or nameOverride; truncated to 63 characters, a label value's limit.
*/}}
{{- define "perfpilot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The resources' name: fullnameOverride, else the release name when it contains the chart's name, else
"<release>-<name>"; truncated to 63 characters (a DNS label).
*/}}
{{- define "perfpilot.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The chart's name and version, for the helm.sh/chart label.
*/}}
{{- define "perfpilot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels of every resource.
*/}}
{{- define "perfpilot.labels" -}}
helm.sh/chart: {{ include "perfpilot.chart" . }}
{{ include "perfpilot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: perfpilot
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
The labels the Deployment selects its pod by (and the metrics Service selects the pod by): they must never
change between upgrades, a Deployment's selector being immutable.
*/}}
{{- define "perfpilot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "perfpilot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
The service account's name: serviceAccount.name, else the full name when the chart creates it, else "default".
*/}}
{{- define "perfpilot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "perfpilot.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The image: repository and tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "perfpilot.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
Where the Prometheus bearer token and CA bundle are mounted. A whole-volume mount (not a subPath), so that a
rotated Secret reaches the file the operator re-reads on every query.
*/}}
{{- define "perfpilot.tokenDir" -}}/etc/perfpilot/prometheus-token{{- end -}}
{{- define "perfpilot.caDir" -}}/etc/perfpilot/prometheus-ca{{- end -}}
