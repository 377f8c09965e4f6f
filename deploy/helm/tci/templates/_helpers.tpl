{{/* Names, labels and the pieces every pod of the chart shares. */}}

{{- define "tci.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of one service's objects: (dict "root" $ "service" "claims") */}}
{{- define "tci.serviceName" -}}
{{- printf "%s-%s" (include "tci.fullname" .root) .service -}}
{{- end -}}

{{- define "tci.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The selector of one service's pods: (dict "root" $ "service" "claims") */}}
{{- define "tci.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{- define "tci.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* What uvicorn may take to finish its requests once the preStop pause is over. */}}
{{- define "tci.gracefulShutdownSeconds" -}}
{{- $seconds := sub (sub .Values.terminationGracePeriodSeconds .Values.preStopSleepSeconds) 5 -}}
{{- if lt $seconds 1 -}}
{{- fail "terminationGracePeriodSeconds must exceed preStopSleepSeconds by more than 5" -}}
{{- end -}}
{{- $seconds -}}
{{- end -}}

{{- define "tci.secretName" -}}
{{- default (printf "%s-secrets" (include "tci.fullname" .)) .Values.secret.existingSecret -}}
{{- end -}}

{{/* One service's values: the defaults overridden by services.<name>. */}}
{{- define "tci.serviceValues" -}}
{{- $own := index .root.Values.services .service | default dict -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.defaults) (deepCopy $own)) -}}
{{- end -}}

{{/* What the chart runs, name → its values (the defaults overridden by its own): the three
services and, with console.enabled, the staff console. `readinessPath` is the service's /readyz,
and the console's /healthz (it has no database to wait for). */}}
{{- define "tci.workloads" -}}
{{- $all := dict -}}
{{- range $service, $_ := .Values.services -}}
{{- $values := include "tci.serviceValues" (dict "root" $ "service" $service) | fromYaml -}}
{{- $_ := set $values "readinessPath" $.Values.probes.readiness.path -}}
{{- $_ := set $all $service $values -}}
{{- end -}}
{{- if .Values.console.enabled -}}
{{- $values := mergeOverwrite (deepCopy .Values.defaults) (omit (deepCopy .Values.console) "enabled") -}}
{{- $_ := set $values "readinessPath" .Values.probes.liveness.path -}}
{{- $_ := set $values "console" true -}}
{{- $_ := set $all "console" $values -}}
{{- end -}}
{{- toYaml $all -}}
{{- end -}}

{{/* The environment of every container: plain settings, then the secrets by reference. The
console (console: true) is given no database or Redis URL, only the JWT secret it signs staff's
tokens with and its OpenID Connect client secret. */}}
{{- define "tci.env" -}}
{{- $root := .root -}}
{{- $env := merge (deepCopy (.extra | default dict)) (deepCopy $root.Values.env) -}}
{{- range $name, $value := $env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range $service, $own := $root.Values.services }}
- name: {{ printf "TCI_%s_URL" (upper $service) }}
  value: {{ printf "http://%s:%v" (include "tci.serviceName" (dict "root" $root "service" $service)) $own.port | quote }}
{{- end }}
{{- if .console }}
- name: TCI_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "tci.secretName" $root }}
      key: {{ $root.Values.secret.keys.jwtSecret }}
- name: TCI_CONSOLE_OIDC_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "tci.secretName" $root }}
      key: {{ $root.Values.secret.keys.consoleOidcClientSecret }}
      optional: true
{{- else }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "tci.secretName" $root }}
      key: {{ $root.Values.secret.keys.databaseUrl }}
- name: TCI_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "tci.secretName" $root }}
      key: {{ $root.Values.secret.keys.jwtSecret }}
- name: TCI_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "tci.secretName" $root }}
      key: {{ $root.Values.secret.keys.redisUrl }}
      optional: true
{{- end }}
{{- end -}}
