{{/* The chart name, shortened to fit a DNS label. */}}
{{- define "gto.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full resource name: the release name, prefixed to the chart name unless it already contains it. */}}
{{- define "gto.fullname" -}}
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

{{- define "gto.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. The operator's own pods never carry managed-by=green-training-operator:
that label marks the training pods the PodMonitor scrapes. */}}
{{- define "gto.labels" -}}
helm.sh/chart: {{ include "gto.chart" . }}
{{ include "gto.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: green-training
{{- end }}

{{- define "gto.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gto.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "gto.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gto.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gto.configMapName" -}}
{{- default (printf "%s-config" (include "gto.fullname" .)) .Values.existingConfigMap }}
{{- end }}

{{- define "gto.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The namespaces the operator watches, as a JSON list: [] means every namespace (scope cluster). */}}
{{- define "gto.watchNamespaces" -}}
{{- if eq .Values.rbac.scope "namespaced" }}
{{- default (list .Release.Namespace) .Values.rbac.watchNamespaces | uniq | toJson }}
{{- else }}
{{- list | toJson }}
{{- end }}
{{- end }}

{{/* The operator configuration file: `config` with the ports and namespaces the chart owns. */}}
{{- define "gto.config" -}}
{{- $op := omit (default dict .Values.config.operator) "metricsPort" "watchNamespaces" }}
{{- $_ := set $op "metricsPort" (int .Values.metrics.port) }}
{{- $_ := set $op "watchNamespaces" (include "gto.watchNamespaces" . | fromJsonArray) }}
{{- $cfg := omit .Values.config "operator" "kueue" "multiKueue" }}
{{- $_ := set $cfg "operator" $op }}
{{- if .Values.kueue.enabled }}
{{- $kq := omit (default dict .Values.config.kueue) "enabled" }}
{{- $_ := set $kq "enabled" true }}
{{- $_ := set $cfg "kueue" $kq }}
{{- else if and .Values.config.kueue .Values.multiKueue.enabled }}
{{- $_ := set $cfg "kueue" (omit .Values.config.kueue "enabled") }}
{{- end }}
{{- if .Values.multiKueue.enabled }}
{{- $mk := omit (default dict .Values.config.multiKueue) "enabled" "workers" }}
{{- $_ := set $mk "enabled" true }}
{{- $workers := list }}
{{- range .Values.multiKueue.workers }}
{{- $workers = append $workers (dict "cluster" .cluster "region" .region "kubeconfig" (printf "/etc/green-operator-workers/%s/%s" .cluster (default "kubeconfig" .key))) }}
{{- end }}
{{- $_ := set $mk "workers" $workers }}
{{- $_ := set $cfg "multiKueue" $mk }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* Regions planned on static averages by design (no carbon.provider), as a regex alternation. */}}
{{- define "gto.staticOnlyRegions" -}}
{{- $static := .Values.prometheusRule.staticOnlyRegions }}
{{- if not $static }}
{{- range .Values.config.regions }}
{{- if not (and .carbon .carbon.provider) }}
{{- $static = append $static .name }}
{{- end }}
{{- end }}
{{- end }}
{{- join "|" $static }}
{{- end }}

{{/* The node agent: the trainer image, its own component label and ServiceAccount. */}}
{{- define "gto.nodeAgent.name" -}}
{{- printf "%s-node-agent" (include "gto.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gto.nodeAgent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gto.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: node-agent
{{- end }}

{{- define "gto.nodeAgent.image" -}}
{{- $img := .Values.nodeAgent.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{- define "gto.nodeAgent.labels" -}}
helm.sh/chart: {{ include "gto.chart" . }}
{{ include "gto.nodeAgent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: green-training
{{- end }}
