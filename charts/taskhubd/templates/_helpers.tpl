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

{{/* Where taskhubd reads its bearer tokens (taskhubd.auth.existingSecret mounted at taskhubd.auth.mountPath). */}}
{{- define "taskhubd.tokenFile" -}}
{{ .Values.taskhubd.auth.mountPath }}/tokens
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
    {{- if not .Values.store.postgres.enabled }}
    - --data-dir={{ .Values.persistence.mountPath }}/data
    {{- end }}
    - --log-level={{ $v.logLevel }}
    - --log-format={{ $v.logFormat }}
    - --drain-grace={{ $v.drainGrace }}
    {{- if $v.auth.existingSecret }}
    - --auth-token-file={{ include "taskhubd.tokenFile" . }}
    {{- end }}
    {{- if .Values.store.postgres.enabled }}
    - --partition-lease={{ .Values.store.postgres.partitionLease }}
    {{- end }}
    {{- with $v.extraArgs }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if .Values.store.postgres.enabled }}
  {{- $pg := .Values.store.postgres }}
  env:
    # The store (a URI or conninfo without the password) and the password, from the Secret: never on the
    # command line, where the process list would show it (taskhubd refuses a --store holding a password).
    - name: TASKHUBD_STORE
      valueFrom:
        secretKeyRef:
          name: {{ $pg.existingSecret | quote }}
          key: {{ $pg.uriKey | quote }}
    {{- if $pg.passwordKey }}
    - name: PGPASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ $pg.existingSecret | quote }}
          key: {{ $pg.passwordKey | quote }}
    {{- end }}
    # Each replica's name among the task hub's replicas: the pod name, unique among the Deployment's pods.
    - name: TASKHUBD_REPLICA_ID
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- else }}
  {{- with $v.extraEnv }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
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
        # POST /admin/drain (with the X-Taskhubd-Admin header the ops port wants for state changes, and the first
        # token of the token file when there is one), then wait (bounded) until taskhubd has closed the ops port,
        # i.e. exited.
        command:
          - /bin/bash
          - -c
          - >-
            {{- if $v.auth.existingSecret }}
            t=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' {{ include "taskhubd.tokenFile" . }} | head -n 1 | tr -d '[:space:]');
            {{- end }}
            exec 3<>/dev/tcp/127.0.0.1/{{ $v.ops.port }} &&
            { printf 'POST /admin/drain HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Taskhubd-Admin: 1\r\nContent-Length: 0\r\n';
            {{- if $v.auth.existingSecret }}
            printf 'Authorization: Bearer %s\r\n' "$t";
            {{- end }}
            printf '\r\n'; } >&3 && cat <&3 >/dev/null;
            for i in $(seq {{ add $v.drainGrace 5 }}); do
            (exec 4<>/dev/tcp/127.0.0.1/{{ $v.ops.port }}) 2>/dev/null || exit 0; sleep 1; done
  {{- end }}
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  {{- if or (not .Values.store.postgres.enabled) $v.extraVolumeMounts $v.auth.existingSecret }}
  volumeMounts:
    {{- if not .Values.store.postgres.enabled }}
    - name: data
      mountPath: {{ .Values.persistence.mountPath }}
    {{- end }}
    {{- if $v.auth.existingSecret }}
    - name: auth-tokens
      mountPath: {{ $v.auth.mountPath }}
      readOnly: true
    {{- end }}
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
{{- end -}}


{{/* Replicas: the value, else 1 with RocksDB (independent pods) and 3 with PostgreSQL (one shared task hub). */}}
{{- define "taskhubd.replicas" -}}
{{- if kindIs "invalid" .Values.replicas -}}
{{- if .Values.store.postgres.enabled }}3{{ else }}1{{ end -}}
{{- else -}}
{{- .Values.replicas -}}
{{- end -}}
{{- end -}}

{{/* Refuses values that cannot work; included by the workload template of either store. */}}
{{- define "taskhubd.checks" -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.taskhubd.drainGrace) }}
{{- fail "terminationGracePeriodSeconds must be greater than taskhubd.drainGrace, or kubelet kills taskhubd mid-drain" }}
{{- end }}
{{- if and (eq .Values.taskhubd.preStop "http") (not .Values.taskhubd.ops.enabled) }}
{{- fail "taskhubd.preStop=http needs taskhubd.ops.enabled" }}
{{- end }}
{{- if .Values.store.postgres.enabled }}
{{- if not .Values.store.postgres.existingSecret }}
{{- fail "store.postgres.enabled needs store.postgres.existingSecret: the Secret holding the PostgreSQL URI or conninfo (key store.postgres.uriKey) and its password (key store.postgres.passwordKey)" }}
{{- end }}
{{- if not .Values.taskhubd.ops.enabled }}
{{- fail "store.postgres.enabled needs taskhubd.ops.enabled: readiness is GET /readyz, which is 503 while taskhubd waits for PostgreSQL or drains" }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The pod template of the StatefulSet (RocksDB) or the Deployment (PostgreSQL). */}}
{{- define "taskhubd.podTemplate" -}}
metadata:
  labels:
    {{- include "taskhubd.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- if .Values.taskhubd.ops.enabled }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ .Values.taskhubd.ops.port | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "taskhubd.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if eq .Values.sidecarMode "native" }}
  initContainers:
    {{- include "taskhubd.container" . | nindent 4 }}
  {{- end }}
  containers:
    {{- if .Values.app.enabled }}
    - name: {{ .Values.app.name }}
      image: {{ printf "%s:%s" .Values.app.image.repository .Values.app.image.tag | quote }}
      imagePullPolicy: {{ .Values.app.image.pullPolicy }}
      {{- with .Values.app.command }}
      command:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.app.args }}
      args:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      env:
        - name: TASKHUBD_ADDRESS
          value: "127.0.0.1:{{ .Values.taskhubd.grpc.port }}"
        {{- with .Values.app.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.app.ports }}
      ports:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml .Values.app.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      {{- with .Values.app.volumeMounts }}
      volumeMounts:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- if eq .Values.sidecarMode "classic" }}
    {{- include "taskhubd.container" . | nindent 4 }}
    {{- end }}
  {{- if or .Values.extraVolumes .Values.taskhubd.auth.existingSecret }}
  volumes:
    {{- if .Values.taskhubd.auth.existingSecret }}
    # The bearer tokens (--auth-token-file), readable by the pod's fsGroup (taskhubd's user); the preStop drain sends the first.
    - name: auth-tokens
      secret:
        secretName: {{ .Values.taskhubd.auth.existingSecret | quote }}
        defaultMode: 0440
        items:
          - key: {{ .Values.taskhubd.auth.tokensKey | quote }}
            path: tokens
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
