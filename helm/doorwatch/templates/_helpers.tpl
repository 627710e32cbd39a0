{{/*
Names. Kubernetes names are at most 63 characters (DNS labels); suffixes are added after trimming.
*/}}
{{- define "doorwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "doorwatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "doorwatch.agent.fullname" -}}{{ include "doorwatch.fullname" . }}-agent{{- end -}}
{{- define "doorwatch.collector.fullname" -}}{{ include "doorwatch.fullname" . }}-collector{{- end -}}

{{- define "doorwatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "doorwatch.labels" -}}
helm.sh/chart: {{ include "doorwatch.chart" . }}
app.kubernetes.io/name: {{ include "doorwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: doorwatch
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of a component: include "doorwatch.selectorLabels" (list . "agent"). */}}
{{- define "doorwatch.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "doorwatch.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* All labels of a component's objects. */}}
{{- define "doorwatch.componentLabels" -}}
{{ include "doorwatch.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "doorwatch.agent.serviceAccountName" -}}
{{- if .Values.agent.serviceAccount.create -}}
{{- default (include "doorwatch.agent.fullname" .) .Values.agent.serviceAccount.name -}}
{{- else -}}
{{- required "agent.serviceAccount.name is required when agent.serviceAccount.create is false (the agent needs get/list/watch on pods, namespaces and acceptauditpolicies)" .Values.agent.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "doorwatch.collector.serviceAccountName" -}}
{{- if .Values.collector.serviceAccount.create -}}
{{- default (include "doorwatch.collector.fullname" .) .Values.collector.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.collector.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "doorwatch.agent.priorityClassName" -}}
{{- if .Values.agent.priorityClass.name -}}
{{- .Values.agent.priorityClass.name -}}
{{- else if .Values.agent.priorityClass.create -}}
{{- include "doorwatch.agent.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* The image reference: repository@digest, or repository:tag (default appVersion). */}}
{{- define "doorwatch.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The collector's in-cluster DNS name (what agents dial and verify). */}}
{{- define "doorwatch.collector.host" -}}
{{- printf "%s.%s.svc.%s" (include "doorwatch.collector.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* Every DNS name of the collector's server certificate, as a YAML list. */}}
{{- define "doorwatch.collector.dnsNames" -}}
{{- $svc := include "doorwatch.collector.fullname" . -}}
{{- $names := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (include "doorwatch.collector.host" .) -}}
{{- toYaml (concat $names .Values.tls.extraServerDnsNames | uniq) -}}
{{- end -}}

{{/* TLS Secret names, per mode. */}}
{{- define "doorwatch.tls.serverSecretName" -}}
{{- if eq .Values.tls.mode "secret" -}}
{{- required "tls.secret.serverSecretName is required when tls.mode is \"secret\": the collector's Secret with tls.crt, tls.key and ca.crt (the CA of the agents' certificates)" .Values.tls.secret.serverSecretName -}}
{{- else -}}
{{- include "doorwatch.collector.fullname" . }}-tls
{{- end -}}
{{- end -}}

{{- define "doorwatch.tls.clientSecretName" -}}
{{- if eq .Values.tls.mode "secret" -}}
{{- required "tls.secret.clientSecretName is required when tls.mode is \"secret\": the agents' Secret with tls.crt, tls.key and ca.crt (the CA of the collector's certificate)" .Values.tls.secret.clientSecretName -}}
{{- else -}}
{{- include "doorwatch.agent.fullname" . }}-tls
{{- end -}}
{{- end -}}

{{- define "doorwatch.tls.caSecretName" -}}
{{- include "doorwatch.fullname" . }}-ca
{{- end -}}

{{/* The agent's config file (agent.yaml), as YAML. */}}
{{- define "doorwatch.agent.config" -}}
{{- $c := .Values.agent.config -}}
{{- $cfg := dict
  "collector" (printf "%s:%d" (include "doorwatch.collector.host" .) (int .Values.collector.port))
  "tls" (dict "ca" "/etc/doorwatch/tls/ca.crt" "cert" "/etc/doorwatch/tls/tls.crt" "key" "/etc/doorwatch/tls/tls.key" "serverName" (include "doorwatch.collector.host" .))
  "spool" (dict "dir" .Values.agent.spoolHostPath "maxBytes" $c.spool.maxBytes "overflow" $c.spool.overflow)
  "batch" (dict "maxEvents" (int $c.batch.maxEvents) "maxDelay" $c.batch.maxDelay)
  "flushTimeout" $c.flushTimeout
  "includeEagain" $c.includeEagain
  "ringSize" $c.ringSize
  "pollInterval" $c.pollInterval
  "pendingDeadline" $c.pendingDeadline
  "listeners" (dict "period" $c.listeners.period)
  "logLevel" $c.logLevel
  "health" (dict "address" (printf "0.0.0.0:%d" (int .Values.agent.healthPort)))
-}}
{{- $kube := dict -}}
{{- with $c.kube.labels }}{{ $_ := set $kube "labels" . }}{{ end -}}
{{- with $c.kube.annotations }}{{ $_ := set $kube "annotations" . }}{{ end -}}
{{- if $kube }}{{ $_ := set $cfg "kube" $kube }}{{ end -}}
{{- if not (kindIs "invalid" .Values.agent.policy) }}{{ $_ := set $cfg "policy" .Values.agent.policy }}{{ end -}}
{{- if eq .Values.auth.mode "kubernetes" }}{{ $_ := set $cfg "tokenFile" "/var/run/secrets/doorwatch/token" }}{{ end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The collector's config file (collector.yaml), as YAML. */}}
{{- define "doorwatch.collector.config" -}}
{{- $c := .Values.collector.config -}}
{{- $cfg := dict
  "listen" (printf "0.0.0.0:%d" (int .Values.collector.port))
  "tls" (dict "cert" "/etc/doorwatch/tls/tls.crt" "key" "/etc/doorwatch/tls/tls.key" "clientCa" "/etc/doorwatch/tls/ca.crt" "requireClientCert" true)
  "maxMessageBytes" $c.maxMessageBytes
  "rateLimit" (dict "eventsPerSecond" (int $c.rateLimit.eventsPerSecond))
  "subscribers" (dict "maxBuffered" (int $c.subscribers.maxBuffered) "max" (int $c.subscribers.max))
  "drainTimeout" $c.drainTimeout
  "batchContexts" $c.batchContexts
  "health" (dict "address" (printf "0.0.0.0:%d" (int .Values.collector.healthPort)))
  "sinks" .Values.collector.sinks
-}}
{{- $p := .Values.collector.peers -}}
{{- if $p.enabled -}}
{{- $_ := set $cfg "peers" (dict "enabled" true "history" $p.history "clusterCidrs" $p.clusterCidrs "labelAllowList" $p.labelAllowList) -}}
{{- end -}}
{{- if eq .Values.auth.mode "kubernetes" -}}
{{- $sa := dict "namespace" .Release.Namespace "name" (include "doorwatch.agent.serviceAccountName" .) -}}
{{- $_ := set $cfg "auth" (dict "mode" "kubernetes" "kubernetes" (dict "audience" .Values.auth.audience "agentServiceAccount" $sa)) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Fails unless cert-manager's API is known to the cluster (or passed with --api-versions). */}}
{{- define "doorwatch.requireCertManager" -}}
{{- if not (.Capabilities.APIVersions.Has "cert-manager.io/v1") -}}
{{- fail "tls.mode is \"certManager\" but the cluster does not serve cert-manager.io/v1: install cert-manager first (or, with helm template, pass --api-versions cert-manager.io/v1), or choose tls.mode generate or secret" -}}
{{- end -}}
{{- end -}}

{{/* Whole seconds (rounded up) of a duration as the agent and collector take it: 500ms, 1.5s, 30s, 5m, 1h, or seconds. */}}
{{- define "doorwatch.seconds" -}}
{{- $d := toString . | trim -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" $d | float64 -}}
{{- $perUnit := get (dict "ms" 0.001 "s" 1 "m" 60 "h" 3600) (regexFind "(ms|s|m|h)$" $d | default "s") -}}
{{- /* Rounded to the millisecond first: 1.1m is 66 s, not the 66.00000000000001 of floating point. */ -}}
{{- round (mulf $n $perUnit) 3 | ceil | int -}}
{{- end -}}

{{/* Fails unless a pod's grace period leaves `margin` seconds after the duration it must wait at shutdown. */}}
{{- define "doorwatch.checkGrace" -}}
{{- $wait := include "doorwatch.seconds" (index . 1) | atoi -}}
{{- $grace := int (index . 0) -}}
{{- if lt $grace (add $wait (index . 3)) -}}
{{- fail (printf "%s (%d) must exceed %s (%s) by at least %d seconds: %s" (index . 4) $grace (index . 5) (toString (index . 1)) (index . 3) (index . 2)) -}}
{{- end -}}
{{- end -}}
