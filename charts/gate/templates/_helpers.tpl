{{/* Names, labels and images shared by every template. */}}

{{- define "gate.fullname" -}}
{{- if contains "gate" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-gate" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gate.labels" -}}
app.kubernetes.io/part-of: gate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: include "gate.selector" (list . "control") */}}
{{- define "gate.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: gate-{{ index . 1 }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- end -}}

{{- define "gate.componentLabels" -}}
{{ include "gate.labels" (index . 0) }}
app.kubernetes.io/name: gate-{{ index . 1 }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Image of one binary: include "gate.image" (list . "connector") */}}
{{- define "gate.image" -}}
{{- $root := index . 0 -}}
{{- printf "%s/gate-%s:%s" $root.Values.image.registry (index . 1) (default $root.Chart.AppVersion $root.Values.image.tag) -}}
{{- end -}}

{{- define "gate.controlName" -}}{{ include "gate.fullname" . }}-control{{- end -}}
{{- define "gate.operatorName" -}}{{ include "gate.fullname" . }}-operator{{- end -}}
{{- define "gate.connectorName" -}}{{ include "gate.fullname" . }}-connector{{- end -}}

{{- define "gate.controlUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "gate.controlName" .) .Release.Namespace .Values.controlPlane.service.port -}}
{{- end -}}

{{- define "gate.controlKeySecret" -}}
{{- default (include "gate.controlName" .) .Values.controlPlane.apiKey.existingSecret -}}
{{- end -}}

{{- define "gate.operatorKeySecret" -}}
{{- default (include "gate.operatorName" .) .Values.operator.apiKey.existingSecret -}}
{{- end -}}

{{- define "gate.connectorTokenSecret" -}}
{{- default (include "gate.connectorName" .) .Values.connector.token.existingSecret -}}
{{- end -}}

{{- define "gate.webhookCertSecret" -}}{{ include "gate.operatorName" . }}-webhook-tls{{- end -}}

{{- define "gate.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{- define "gate.containerSecurity" -}}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
{{- end -}}

{{- define "gate.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Refuse value combinations the schema cannot express. */}}
{{- define "gate.validate" -}}
{{- if and (gt (int .Values.controlPlane.replicas) 1) (not .Values.controlPlane.database.dsnSecret.name) -}}
{{- fail "controlPlane.replicas > 1 needs an external PostgreSQL: set controlPlane.database.dsnSecret.name (SQLite lives on one pod's volume)" -}}
{{- end -}}
{{- if and .Values.injector.enabled (not .Values.operator.enabled) -}}
{{- fail "injector.enabled needs operator.enabled: the operator serves the webhook" -}}
{{- end -}}
{{- end -}}

{{/* cpu=50m,memory=64Mi from a requests/limits map (the operator's --sidecar-* flags). */}}
{{- define "gate.amounts" -}}
{{- $out := list -}}
{{- range $k, $v := . -}}
{{- $out = append $out (printf "%s=%v" $k $v) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
