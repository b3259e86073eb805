{{/* Names, labels and the lists the templates share. */}}

{{- define "conveyor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object name: <release>-<chart>, or the release alone when it already contains the chart name. */}}
{{- define "conveyor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "conveyor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "conveyor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "conveyor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "conveyor.labels" -}}
helm.sh/chart: {{ include "conveyor.chart" . }}
app.kubernetes.io/name: {{ include "conveyor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: conveyor
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* metadata.annotations for every object, with extra annotations merged in: include "conveyor.annotations" (list . extra) */}}
{{- define "conveyor.annotations" -}}
{{- $root := index . 0 }}
{{- $all := merge (dict) (index . 1 | default dict) ($root.Values.commonAnnotations | default dict) }}
{{- with $all }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "conveyor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "conveyor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "conveyor.leaseName" -}}
{{- default (printf "%s-leader" (include "conveyor.fullname" .)) .Values.leaderElection.leaseName | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "conveyor.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* true when the operator watches every namespace */}}
{{- define "conveyor.clusterWide" -}}
{{- if not .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/* The namespaces that get the worker ServiceAccount and Role, one per line. */}}
{{- define "conveyor.workerNamespaces" -}}
{{- $list := .Values.worker.namespaces | default .Values.watchNamespaces | default (list .Release.Namespace) }}
{{- range $list | uniq }}
{{ . }}
{{- end }}
{{- end }}

{{/* The web UI (ui.enabled): its object names, selector and image. */}}
{{- define "conveyor.ui.fullname" -}}
{{- printf "%s-ui" (include "conveyor.fullname" . | trunc 60 | trimSuffix "-") }}
{{- end }}

{{- define "conveyor.ui.selectorLabels" -}}
app.kubernetes.io/name: {{ include "conveyor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: ui
{{- end }}

{{/* Each part defaults to the chart's image; the chart's digest pins the UI only while ui.image names no
repository or tag of its own (it is the digest of the chart's image, not of the user's). */}}
{{- define "conveyor.ui.image" -}}
{{- $ui := .Values.ui.image }}
{{- $repository := $ui.repository | default .Values.image.repository }}
{{- $digest := $ui.digest }}
{{- if and (not $digest) (not $ui.repository) (not $ui.tag) }}
{{- $digest = .Values.image.digest }}
{{- end }}
{{- if $digest }}
{{- printf "%s@%s" $repository $digest }}
{{- else }}
{{- printf "%s:%s" $repository ($ui.tag | default .Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The names the UI's Service answers to in the cluster, one per line: --allowed-host for each. */}}
{{- define "conveyor.ui.serviceHosts" -}}
{{- $svc := include "conveyor.ui.fullname" . }}
{{- $ns := .Release.Namespace }}
{{ $svc }}
{{ printf "%s.%s" $svc $ns }}
{{ printf "%s.%s.svc" $svc $ns }}
{{ printf "%s.%s.svc.cluster.local" $svc $ns }}
{{- end }}
