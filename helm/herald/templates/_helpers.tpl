{{/* Names and labels. */}}
{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.fullname" -}}
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

{{/* Cluster-scoped objects are shared by every release: their names carry the release namespace. */}}
{{- define "herald.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "herald.fullname" .) }}
{{- end }}

{{- define "herald.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "herald.labels" -}}
helm.sh/chart: {{ include "herald.chart" . }}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: herald
{{- end }}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "herald.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The watched namespaces as a JSON list: [] with rbac.clusterWide (every namespace),
else watchNamespaces, else the release namespace. Also checks the combinations.
*/}}
{{- define "herald.namespaces" -}}
{{- if .Values.rbac.clusterWide }}
{{- if .Values.watchNamespaces }}
{{- fail "rbac.clusterWide watches every namespace: leave watchNamespaces empty (or set rbac.clusterWide=false to watch only those)" }}
{{- end }}
{{- list | toJson }}
{{- else }}
{{- default (list .Release.Namespace) .Values.watchNamespaces | uniq | toJson }}
{{- end }}
{{- end }}

{{/* Namespaces that get the adapter ServiceAccount: the release namespace, the watched ones, the extra ones. */}}
{{- define "herald.adapterNamespaces" -}}
{{- $ns := include "herald.namespaces" . | fromJsonArray }}
{{- concat (list .Release.Namespace) $ns .Values.adapter.serviceAccount.extraNamespaces | uniq | toJson }}
{{- end }}

{{/*
The operator's permissions in a watched namespace (a Role per namespace, or the
cluster-wide ClusterRole). Each rule is the least the operator needs; docs/install.md
says what each one is for.
*/}}
{{- define "herald.rules" -}}
# kopf watches both kinds; the operator patches Publication labels (metadata only).
- apiGroups: ["herald.dev"]
  resources: ["publications"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["herald.dev"]
  resources: ["platformadapters"]
  verbs: ["get", "list", "watch"]
# The operator writes status (merge patch) on both kinds.
- apiGroups: ["herald.dev"]
  resources: ["publications/status", "platformadapters/status"]
  verbs: ["patch"]
# One Job per attempt: created, watched, deleted when superseded or expired.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
# The adapter pods' termination messages carry the results.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Events on Publications (Herald's and kopf's own).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# Credentials Secrets: only their metadata (resourceVersion) is read, to notice rotation.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- with .Values.rbac.secretNames }}
  resourceNames: {{ toJson . }}
{{- end }}
{{- if and .Values.peering.enabled (not .Values.rbac.clusterWide) }}
# kopf peering in the namespace (KopfPeering): keep-alives and the peers' status.
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}

{{/* The cluster-scoped permissions kopf needs in every mode. */}}
{{- define "herald.kopfRules" -}}
# kopf's resource observer: notices the CRDs being (re)installed.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if not .Values.rbac.clusterWide }}
# kopf's namespace observer (namespaced mode only): notices watched namespaces come and go.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- if and .Values.peering.enabled .Values.rbac.clusterWide }}
# kopf peering cluster-wide (ClusterKopfPeering).
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}

{{/* The alerts Secret's name. */}}
{{- define "herald.alertsSecretName" -}}
{{- default (printf "%s-alerts" (include "herald.fullname" .)) .Values.alerts.existingSecret }}
{{- end }}

{{/* Checks that span several values. */}}
{{- define "herald.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.peering.enabled) }}
{{- fail "replicaCount > 1 needs peering.enabled=true: kopf has no leases, and two unpeered operators would both act on the same objects" }}
{{- end }}
{{- if and .Values.alerts.enabled (not .Values.alerts.existingSecret) (not .Values.alerts.config) }}
{{- fail "alerts.enabled needs alerts.existingSecret or alerts.config" }}
{{- end }}
{{- end }}
