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

{{/*
Namespaces where the operator may read the named credentials Secrets (rbac.secretNames): the watched
namespaces, or with rbac.clusterWide the ones listed in rbac.secretNamespaces (never a ClusterRole,
which would reach a Secret of that name in every namespace, kube-system included).
*/}}
{{- define "herald.secretNamespaces" -}}
{{- if .Values.rbac.clusterWide }}
{{- .Values.rbac.secretNamespaces | uniq | toJson }}
{{- else }}
{{- include "herald.namespaces" . }}
{{- end }}
{{- end }}

{{/* The alerts Secret's name. */}}
{{- define "herald.alertsSecretName" -}}
{{- default (printf "%s-alerts" (include "herald.fullname" .)) .Values.alerts.existingSecret }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: repository@digest when digest is set, else
repository:tag, the tag defaulting to the chart's appVersion. A plain string (the earlier form of
adapter.image) is used as it is. Call with (dict "image" <value> "root" $).
*/}}
{{- define "herald.imageRef" -}}
{{- $image := .image }}
{{- if kindIs "string" $image }}
{{- $image }}
{{- else if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (toString (default .root.Chart.AppVersion $image.tag)) }}
{{- end }}
{{- end }}

{{/* adapter.imagePullSecrets (names, or {name: …} like imagePullSecrets) as a comma-separated list. */}}
{{- define "herald.adapterPullSecrets" -}}
{{- $names := list }}
{{- range . }}
{{- if kindIs "map" . }}
{{- $names = append $names .name }}
{{- else }}
{{- $names = append $names . }}
{{- end }}
{{- end }}
{{- join "," $names }}
{{- end }}

{{/*
The operator's settings the chart sets, each once and only as an environment variable, and the value
each one comes from (herald.validate refuses them in extraEnv, and their flags in extraArgs).
*/}}
{{- define "herald.envSources" -}}
HERALD_NAMESPACES: watchNamespaces (or rbac.clusterWide)
HERALD_ALERTS_STATE_CONFIGMAP: alerts.enabled (the release's alerts-state ConfigMap)
HERALD_LEADER_ELECTION: leaderElection.enabled (or replicaCount > 1)
HERALD_LEASE_NAME: the release's name
HERALD_SHARD: shards
HERALD_ADAPTER_IMAGE: adapter.image
HERALD_ADAPTER_SERVICE_ACCOUNT: adapter.serviceAccount.name
HERALD_ADAPTER_IMAGE_PULL_SECRETS: adapter.imagePullSecrets
HERALD_ADAPTER_PRIORITY_CLASS_NAME: adapter.priorityClassName
HERALD_ADAPTER_AFFINITY: adapter.affinity
HERALD_ADAPTER_RESOURCES: adapter.resources
HERALD_JOB_TTL_SECONDS: config.jobTtlSeconds
HERALD_JOB_DEADLINE_SECONDS: config.jobDeadlineSeconds
HERALD_ADAPTER_TIMEOUT_SECONDS: config.adapterTimeoutSeconds
HERALD_QUEUE_ALERT_THRESHOLD: config.queueAlertThreshold
HERALD_READ_SECRET_METADATA: rbac.secretNames
HERALD_PUBLICATION_TTL_SECONDS: config.publicationTtlSeconds
HERALD_METRICS_PORT: metrics.port
HERALD_HEALTH_PORT: health.port
HERALD_ALERTS_CONFIG: alerts.enabled
HERALD_PEERING: peering.enabled and peering.name
HERALD_VERBOSE: config.verbose
HERALD_LOG_FORMAT: logFormat
OTEL_EXPORTER_OTLP_ENDPOINT: tracing.otlpEndpoint
POD_ID: the chart (the pod's name, kopf's identity)
{{- end }}

{{/* The operator's command-line options for settings the chart sets (herald/__main__.py), and their values. */}}
{{- define "herald.argSources" -}}
--namespace: watchNamespaces (or rbac.clusterWide)
--health-port: health.port
--peering: peering.enabled and peering.name
--verbose: config.verbose
--log-format: logFormat
{{- end }}

{{/* Checks that span several values. */}}
{{- define "herald.validate" -}}
{{- if and .Values.shards (not .Values.rbac.clusterWide) }}
{{- fail "shards needs rbac.clusterWide: a shard owns namespaces by their herald.dev/shard label, so every shard watches every namespace" }}
{{- end }}
{{- if and .Values.rbac.secretNames .Values.rbac.clusterWide (not .Values.rbac.secretNamespaces) }}
{{- fail "rbac.secretNames with rbac.clusterWide needs rbac.secretNamespaces: the namespaces whose Secrets of those names the operator may read" }}
{{- end }}
{{- if and .Values.alerts.enabled (not .Values.alerts.existingSecret) (not .Values.alerts.config) }}
{{- fail "alerts.enabled needs alerts.existingSecret or alerts.config" }}
{{- end }}
{{- /* One source per setting: not again in extraEnv or extraArgs. */}}
{{- $envSources := include "herald.envSources" . | fromYaml }}
{{- range .Values.extraEnv }}
{{- if hasKey $envSources .name }}
{{- fail (printf "extraEnv: %s is set by the chart from %s; set that value instead" .name (get $envSources .name)) }}
{{- end }}
{{- end }}
{{- $argSources := include "herald.argSources" . | fromYaml }}
{{- range .Values.extraArgs }}
{{- $flag := regexReplaceAll "=.*$" (toString .) "" }}
{{- if regexMatch "^-[^-]*[nv]" $flag }}
{{- $long := ternary "--verbose" "--namespace" (regexMatch "^-[^-n]*v" $flag) }}
{{- fail (printf "extraArgs: %s (%s) is set by the chart from %s; set that value instead" . $long (get $argSources $long)) }}
{{- end }}
{{- if and (hasPrefix "--" $flag) (gt (len $flag) 2) }}
{{- range $option, $source := $argSources }}
{{- if hasPrefix $flag $option }}
{{- fail (printf "extraArgs: %s is set by the chart from %s; set that value instead" (eq $flag $option | ternary $flag (printf "%s (%s)" $flag $option)) $source) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Leader election: on when asked, and always with more than one replica (only the Lease holder acts).
*/}}
{{- define "herald.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}
