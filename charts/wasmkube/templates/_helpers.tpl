{{/* Name of the chart, or nameOverride. */}}
{{- define "wasmkube.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's resources: fullnameOverride, or the release name if it already holds
the chart name, else "<release>-<chart>". */}}
{{- define "wasmkube.fullname" -}}
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

{{/* Labels on every resource. */}}
{{- define "wasmkube.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "wasmkube.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wasmkube
{{- end }}

{{/* Labels that select the manager's pods. */}}
{{- define "wasmkube.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wasmkube.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end }}

{{/* The manager's ServiceAccount. */}}
{{- define "wasmkube.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wasmkube.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Namespace of the installer Jobs, the Lease and OCI pull Secrets. It must not be the release
namespace: that one is not created by the chart, so it cannot carry the privileged label. */}}
{{- define "wasmkube.installerNamespace" -}}
{{- $ns := default (printf "%s-installer" (include "wasmkube.fullname" .)) .Values.installer.namespace.name | trunc 63 | trimSuffix "-" }}
{{- if eq $ns .Release.Namespace }}
{{- fail (printf "installer.namespace.name %q is the release namespace: installer Jobs need a namespace of their own labelled pod-security.kubernetes.io/enforce=privileged; pick another name" $ns) }}
{{- end }}
{{- $ns }}
{{- end }}

{{/* An image reference from {repository, tag, digest}: repository:tag, or repository:tag@digest when
a digest pins it. The tag defaults to the chart's appVersion. Call with (list .Values.x.image $). */}}
{{- define "wasmkube.image" -}}
{{- $img := index . 0 }}
{{- $root := index . 1 }}
{{- $ref := printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag) }}
{{- if $img.digest }}
{{- $ref = printf "%s@%s" $ref $img.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/* The rules of one kind (ClusterRole or Role) from the RBAC that controller-gen generates from the
manager's markers (config/rbac/role.yaml, copied to files/ by `make generate`). */}}
{{- define "wasmkube.generatedRules" -}}
{{- $kind := index . 0 }}
{{- $root := index . 1 }}
{{- $rules := list }}
{{- range $doc := splitList "---" ($root.Files.Get "files/rbac/role.yaml") }}
{{- $obj := fromYaml $doc }}
{{- if eq (toString (get $obj "kind")) $kind }}
{{- $rules = $obj.rules }}
{{- end }}
{{- end }}
{{- if not $rules }}
{{- fail (printf "files/rbac/role.yaml holds no %s: run `make generate`" $kind) }}
{{- end }}
{{- toYaml $rules }}
{{- end }}

{{/*
The manager's --installer-config file: installer pod settings and per-node overrides.
*/}}
{{- define "wasmkube.installerConfig" -}}
{{- $i := .Values.installer -}}
{{- toYaml (dict "tolerations" $i.tolerations "priorityClassName" $i.priorityClassName "nodeOverrides" $i.nodeOverrides
  "imagePullSecrets" $i.imagePullSecrets "proxy" $i.proxy "resources" $i.resources) -}}
{{- end }}

{{/* The pod settings of the chart's hook Jobs: the manager's image, pull secrets, scheduling and a
restricted security context. */}}
{{- define "wasmkube.hookPod" -}}
{{- $m := .Values.manager -}}
restartPolicy: Never
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $m.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $m.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* The container settings of the chart's hook Jobs. */}}
{{- define "wasmkube.hookContainer" -}}
image: {{ include "wasmkube.image" (list .Values.image .) }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
terminationMessagePolicy: FallbackToLogsOnError
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
resources:
  requests:
    cpu: 10m
    memory: 32Mi
  limits:
    memory: 128Mi
{{- end }}

{{/* The whole seconds of a Go duration such as 4m30s, 90s or 1h (h, m and s units only). */}}
{{- define "wasmkube.seconds" -}}
{{- $d := toString . -}}
{{- $total := 0 -}}
{{- range $part := regexFindAll "[0-9]+[hms]" $d -1 -}}
{{- $n := int (trimSuffix "h" (trimSuffix "m" (trimSuffix "s" $part))) -}}
{{- if hasSuffix "h" $part }}{{ $total = add $total (mul $n 3600) }}{{ else if hasSuffix "m" $part }}{{ $total = add $total (mul $n 60) }}{{ else }}{{ $total = add $total $n }}{{ end -}}
{{- end -}}
{{- $total -}}
{{- end }}
