{{- define "taskhubd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "taskhubd.fullname" -}}
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

{{- define "taskhubd.headless" -}}
{{- printf "%s-headless" (include "taskhubd.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "taskhubd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taskhubd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "taskhubd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "taskhubd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "taskhubd.image" -}}
{{- printf "%s:%s" .Values.taskhubd.image.repository (default .Chart.AppVersion .Values.taskhubd.image.tag) -}}
{{- end -}}

{{- define "taskhubd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "taskhubd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* true when the gRPC listener is only on the pod's loopback */}}
{{- define "taskhubd.grpcLoopback" -}}
{{- $h := .Values.taskhubd.grpc.host -}}
{{- if or (hasPrefix "127." $h) (eq $h "localhost") (eq $h "::1") (eq $h "[::1]") -}}true{{- end -}}
{{- end -}}

{{/* A gRPC health check from inside the taskhubd container (kubelet's own grpc probe dials the pod IP, which a
     loopback listener does not answer). */}}
{{- define "taskhubd.grpcHealthExec" -}}
exec:
  command: ["/usr/local/bin/taskhubd-grpc-ping", "--timeout-ms", "{{ mul .timeout 1000 }}", "127.0.0.1:{{ .port }}", "health"]
{{- end -}}

{{/* The taskhubd container (used as a native sidecar or as a classic second container). */}}
{{- define "taskhubd.container" -}}
{{- $v := .Values.taskhubd -}}
- name: taskhubd
  image: {{ include "taskhubd.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if eq .Values.sidecarMode "native" }}
  restartPolicy: Always
  {{- end }}
  args:
    - --listen={{ $v.grpc.host }}:{{ $v.grpc.port }}
    - --ops-listen={{ if $v.ops.enabled }}{{ $v.ops.host }}:{{ $v.ops.port }}{{ else }}off{{ end }}
    - --data-dir={{ .Values.persistence.mountPath }}/data
    - --log-level={{ $v.logLevel }}
    - --log-format={{ $v.logFormat }}
    - --drain-grace={{ $v.drainGrace }}
    {{- with $v.extraArgs }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.extraEnv }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: grpc
      containerPort: {{ $v.grpc.port }}
      protocol: TCP
    {{- if $v.ops.enabled }}
    - name: ops
      containerPort: {{ $v.ops.port }}
      protocol: TCP
    {{- end }}
  {{- with $v.probes.startup }}
  {{- if .enabled }}
  startupProbe:
    {{- include "taskhubd.grpcHealthExec" (dict "port" $v.grpc.port "timeout" .timeoutSeconds) | nindent 4 }}
    periodSeconds: {{ .periodSeconds }}
    timeoutSeconds: {{ .timeoutSeconds }}
    failureThreshold: {{ .failureThreshold }}
  {{- end }}
  {{- end }}
  {{- with $v.probes.readiness }}
  {{- if .enabled }}
  readinessProbe:
    {{- if $v.ops.enabled }}
    httpGet:
      path: /readyz
      port: ops
    {{- else }}
    {{- include "taskhubd.grpcHealthExec" (dict "port" $v.grpc.port "timeout" .timeoutSeconds) | nindent 4 }}
    {{- end }}
    periodSeconds: {{ .periodSeconds }}
    timeoutSeconds: {{ .timeoutSeconds }}
    failureThreshold: {{ .failureThreshold }}
  {{- end }}
  {{- end }}
  {{- with $v.probes.liveness }}
  {{- if .enabled }}
  livenessProbe:
    {{- if $v.ops.enabled }}
    httpGet:
      path: /healthz
      port: ops
    {{- else }}
    {{- include "taskhubd.grpcHealthExec" (dict "port" $v.grpc.port "timeout" .timeoutSeconds) | nindent 4 }}
    {{- end }}
    initialDelaySeconds: {{ .initialDelaySeconds }}
    periodSeconds: {{ .periodSeconds }}
    timeoutSeconds: {{ .timeoutSeconds }}
    failureThreshold: {{ .failureThreshold }}
  {{- end }}
  {{- end }}
  {{- if eq $v.preStop "http" }}
  lifecycle:
    preStop:
      exec:
        # POST /admin/drain, then wait (bounded) until taskhubd has closed the ops port, i.e. exited.
        command:
          - /bin/bash
          - -c
          - >-
            exec 3<>/dev/tcp/127.0.0.1/{{ $v.ops.port }} &&
            printf 'POST /admin/drain HTTP/1.0\r\nContent-Length: 0\r\n\r\n' >&3 && cat <&3 >/dev/null;
            for i in $(seq {{ add $v.drainGrace 5 }}); do
            (exec 4<>/dev/tcp/127.0.0.1/{{ $v.ops.port }}) 2>/dev/null || exit 0; sleep 1; done
  {{- end }}
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: data
      mountPath: {{ .Values.persistence.mountPath }}
{{- end -}}
