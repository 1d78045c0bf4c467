// Offline helpers for the chart tests. tests/k8s/run.sh copies this file next to the node_modules it installs
// (package.json here) in the build tree, so the bare imports below resolve there.
//   node k8s.mjs validate FILE...           validate every document against the Kubernetes schemas (kubernetes-models)
//   node k8s.mjs to-pod FILE CLAIM [NAME] > OUT
//                                           StatefulSet (or Deployment) -> Pod for `podman kube play` (podman 4.3 has no
//                                           StatefulSet; its Deployments cannot run native sidecars); NAME names the pod
//   node k8s.mjs check-postgres FILE EXPECT assert what the PostgreSQL mode must render (EXPECT: JSON, see below)
//   node k8s.mjs check-secured FILE         assert what tests/k8s/values/secured.yaml must render (tokens, NetworkPolicy)
//   node k8s.mjs prestop FILE               print the taskhubd container's preStop script (run.sh runs it for real)
import fs from "node:fs";
import path from "node:path";
import yaml from "js-yaml";

function docs(file) {
  return yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d && typeof d === "object");
}

async function modelFor(doc) {
  const [group, version] = doc.apiVersion.includes("/") ? doc.apiVersion.split("/") : ["", doc.apiVersion];
  if (group === "monitoring.coreos.com")
    return (await import(`@kubernetes-models/prometheus-operator/${group}/${version}`))[doc.kind];
  const mod = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
  return (await import(mod))[doc.kind];
}

async function validate(files) {
  let bad = 0, n = 0;
  for (const f of files) {
    for (const d of docs(f)) {
      n++;
      const Model = await modelFor(d);
      const what = `${path.basename(f)}: ${d.kind} ${d.metadata && d.metadata.name}`;
      if (!Model) { console.log(`FAIL ${what}: no schema for ${d.apiVersion} ${d.kind}`); bad++; continue; }
      try { new Model(d).validate(); console.log(`ok   ${what}`); }
      catch (e) { console.log(`FAIL ${what}: ${e.message}`); bad++; }
    }
  }
  console.log(`${n - bad}/${n} documents valid`);
  process.exit(bad || n === 0 ? 1 : 0);
}

// Pod 0 of the StatefulSet, as podman kube play (4.3) can run it: native sidecars (initContainers with
// restartPolicy Always) become ordinary containers, the volumeClaimTemplate becomes a claim on CLAIM (a podman
// volume), ports are dropped (kube play would publish them on the host; the test plays with --network=none),
// probes are dropped (kube play does not run them), restartPolicy is OnFailure (podman #16343).
function toPod(file, claim, name) {
  const sts = docs(file).find((d) => d.kind === "StatefulSet" || d.kind === "Deployment");
  if (!sts) throw new Error("no StatefulSet or Deployment in " + file);
  const spec = JSON.parse(JSON.stringify(sts.spec.template.spec));
  const sidecars = (spec.initContainers || []).filter((c) => c.restartPolicy === "Always");
  spec.initContainers = (spec.initContainers || []).filter((c) => c.restartPolicy !== "Always");
  if (!spec.initContainers.length) delete spec.initContainers;
  spec.containers = [...sidecars, ...spec.containers];
  for (const c of [...spec.containers, ...(spec.initContainers || [])]) {
    delete c.restartPolicy; delete c.ports;
    delete c.startupProbe; delete c.readinessProbe; delete c.livenessProbe;
  }
  spec.restartPolicy = "OnFailure";
  spec.volumes = spec.volumes || [];
  for (const t of sts.spec.volumeClaimTemplates || [])
    spec.volumes.push({ name: t.metadata.name, persistentVolumeClaim: { claimName: claim } });
  const pod = {
    apiVersion: "v1", kind: "Pod",
    metadata: { name: name || `${sts.metadata.name}-0`, labels: sts.spec.template.metadata.labels },
    spec,
  };
  process.stdout.write(yaml.dump(pod, { lineWidth: -1 }));
}

// The PostgreSQL mode's render (store.postgres.enabled). EXPECT: {"replicas": 3, "secret": "th-db", "uriKey": "uri",
// "passwordKey": "password" (or "" for none), "lease": 15, "pdb": 1 (maxUnavailable, or null for no PDB)}.
function checkPostgres(file, expect) {
  const all = docs(file);
  let bad = 0;
  const check = (ok, what) => { console.log(`${ok ? "ok  " : "FAIL"} ${what}`); if (!ok) bad++; };
  const of = (kind) => all.filter((d) => d.kind === kind);
  const dep = of("Deployment")[0];
  check(of("Deployment").length === 1, "one Deployment");
  check(of("StatefulSet").length === 0 && of("PersistentVolumeClaim").length === 0, "no StatefulSet, no PersistentVolumeClaim");
  if (!dep) process.exit(1);
  check(!("volumeClaimTemplates" in dep.spec), "no volumeClaimTemplates");
  check(dep.spec.replicas === expect.replicas, `replicas ${dep.spec.replicas} (want ${expect.replicas})`);
  const sel = dep.spec.selector.matchLabels, podLabels = dep.spec.template.metadata.labels;
  check(Object.entries(sel).every(([k, v]) => podLabels[k] === v), "the selector matches the pod template's labels");
  const spec = dep.spec.template.spec;
  check(!(spec.volumes || []).some((v) => v.persistentVolumeClaim || v.name === "data"), "no data volume");
  const th = [...(spec.initContainers || []), ...spec.containers].find((c) => c.name === "taskhubd");
  check(!!th, "a taskhubd container");
  if (!th) process.exit(1);
  check(!(th.volumeMounts || []).some((m) => m.name === "data"), "taskhubd mounts no data volume");
  const env = Object.fromEntries((th.env || []).map((e) => [e.name, e]));
  const secretRef = (e, key) => !!e && !("value" in e) && e.valueFrom && e.valueFrom.secretKeyRef &&
    e.valueFrom.secretKeyRef.name === expect.secret && e.valueFrom.secretKeyRef.key === key;
  check(secretRef(env.TASKHUBD_STORE, expect.uriKey), `TASKHUBD_STORE from secretKeyRef ${expect.secret}/${expect.uriKey}`);
  if (expect.passwordKey)
    check(secretRef(env.PGPASSWORD, expect.passwordKey), `PGPASSWORD from secretKeyRef ${expect.secret}/${expect.passwordKey}`);
  else check(!env.PGPASSWORD, "no PGPASSWORD (passwordKey \"\")");
  const rid = env.TASKHUBD_REPLICA_ID;
  check(!!rid && !("value" in rid) && rid.valueFrom && rid.valueFrom.fieldRef &&
        rid.valueFrom.fieldRef.fieldPath === "metadata.name", "TASKHUBD_REPLICA_ID from fieldRef metadata.name");
  const args = th.args || [];
  check(args.includes(`--partition-lease=${expect.lease}`), `--partition-lease=${expect.lease}`);
  check(!args.some((a) => a.startsWith("--data-dir")), "no --data-dir");
  check(!args.some((a) => a.startsWith("--store") || /password/i.test(a)) && !(th.command || []).some((a) => /password/i.test(a)),
        "no store or password on the command line");
  const rp = th.readinessProbe;
  check(!!rp && rp.httpGet && rp.httpGet.path === "/readyz" && rp.httpGet.port === "ops", "readiness GET /readyz on ops");
  const grace = Number((args.find((a) => a.startsWith("--drain-grace=")) || "=0").split("=")[1]);
  check(spec.terminationGracePeriodSeconds > grace,
        `terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} > --drain-grace ${grace}`);
  const pdbs = of("PodDisruptionBudget");
  if (expect.pdb === null) check(pdbs.length === 0, "no PodDisruptionBudget");
  else {
    const pdb = pdbs[0];
    check(pdbs.length === 1 && pdb.apiVersion === "policy/v1", "one PodDisruptionBudget (policy/v1)");
    check(!!pdb && pdb.spec.maxUnavailable === expect.pdb, `PDB maxUnavailable ${pdb && pdb.spec.maxUnavailable} (want ${expect.pdb})`);
    check(!!pdb && JSON.stringify(pdb.spec.selector.matchLabels) === JSON.stringify(sel), "PDB selects the Deployment's pods");
  }
  const test = of("Pod").find((p) => p.metadata.annotations && p.metadata.annotations["helm.sh/hook"] === "test");
  check(!!test && /getent ahostsv4/.test(test.spec.containers[0].command.join(" ")), "helm test finds the replicas through the headless Service");
  console.log(bad ? `${bad} check(s) failed` : "all checks passed");
  process.exit(bad ? 1 : 0);
}

function taskhubdContainer(file) {
  const w = docs(file).find((d) => d.kind === "StatefulSet" || d.kind === "Deployment");
  const spec = w.spec.template.spec;
  return [w, spec, [...(spec.initContainers || []), ...spec.containers].find((c) => c.name === "taskhubd")];
}

function prestop(file) {
  const [, , th] = taskhubdContainer(file);
  process.stdout.write(th.lifecycle.preStop.exec.command[2] + "\n");
}

// secured.yaml: the tokens come from the Secret th-tokens, mounted read-only where --auth-token-file points; the
// preStop drain sends the admin header and the first token; the NetworkPolicy selects the workload's pods and admits
// the monitoring namespace to the ops port and anyone to 8080, and nothing to the (loopback) gRPC port.
function checkSecured(file) {
  let bad = 0;
  const check = (ok, what) => { console.log(`${ok ? "ok  " : "FAIL"} ${what}`); if (!ok) bad++; };
  const [w, spec, th] = taskhubdContainer(file);
  check(th.args.includes("--auth-token-file=/etc/taskhubd/auth/tokens"), "--auth-token-file=/etc/taskhubd/auth/tokens");
  const vol = (spec.volumes || []).find((v) => v.name === "auth-tokens");
  check(!!vol && vol.secret.secretName === "th-tokens" && vol.secret.items[0].key === "tokens" &&
        vol.secret.items[0].path === "tokens", "volume auth-tokens from Secret th-tokens, key tokens");
  check(!!vol && (vol.secret.defaultMode & 0o007) === 0, "the token file is not world-readable");
  const m = (th.volumeMounts || []).find((v) => v.name === "auth-tokens");
  check(!!m && m.mountPath === "/etc/taskhubd/auth" && m.readOnly === true, "mounted read-only at /etc/taskhubd/auth");
  const app = spec.containers.find((c) => c.name !== "taskhubd");
  check(!(app.volumeMounts || []).some((v) => v.name === "auth-tokens"), "the app container does not get the mount");
  const script = th.lifecycle.preStop.exec.command[2];
  check(/X-Taskhubd-Admin: 1/.test(script) && /Authorization: Bearer %s/.test(script), "preStop sends the header and the token");
  const nps = docs(file).filter((d) => d.kind === "NetworkPolicy");
  check(nps.length === 1, "one NetworkPolicy");
  const np = nps[0];
  check(!!np && JSON.stringify(np.spec.podSelector.matchLabels) === JSON.stringify(w.spec.selector.matchLabels),
        "it selects the workload's pods");
  check(!!np && JSON.stringify(np.spec.policyTypes) === '["Ingress"]', "policyTypes [Ingress]");
  const rules = (np && np.spec.ingress) || [];
  const ops = rules.find((r) => r.ports && r.ports.some((p) => p.port === 9464));
  check(!!ops && ops.from.length === 1 && ops.from[0].namespaceSelector.matchLabels["kubernetes.io/metadata.name"] === "monitoring",
        "the ops port from the monitoring namespace only");
  check(rules.some((r) => !r.from && r.ports.some((p) => p.port === 8080)), "extraIngress: 8080 from anywhere");
  check(!rules.some((r) => r.ports && r.ports.some((p) => p.port === 4001)), "no rule for the loopback gRPC port");
  console.log(bad ? `${bad} check(s) failed` : "all checks passed");
  process.exit(bad ? 1 : 0);
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === "validate") await validate(args);
else if (cmd === "to-pod") toPod(args[0], args[1], args[2]);
else if (cmd === "check-postgres") checkPostgres(args[0], JSON.parse(args[1]));
else if (cmd === "check-secured") checkSecured(args[0]);
else if (cmd === "prestop") prestop(args[0]);
else { console.error("usage: k8s.mjs validate FILE... | to-pod FILE CLAIM [NAME] | check-postgres FILE EXPECT | check-secured FILE | prestop FILE"); process.exit(2); }
