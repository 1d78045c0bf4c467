// Offline helpers for the chart tests. tests/k8s/run.sh copies this file next to the node_modules it installs
// (package.json here) in the build tree, so the bare imports below resolve there.
//   node k8s.mjs validate FILE...           validate every document against the Kubernetes schemas (kubernetes-models)
//   node k8s.mjs to-pod FILE CLAIM > OUT    StatefulSet -> Pod for `podman kube play` (podman 4.3 has no StatefulSet)
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
function toPod(file, claim) {
  const sts = docs(file).find((d) => d.kind === "StatefulSet");
  if (!sts) throw new Error("no StatefulSet in " + file);
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
    metadata: { name: `${sts.metadata.name}-0`, labels: sts.spec.template.metadata.labels },
    spec,
  };
  process.stdout.write(yaml.dump(pod, { lineWidth: -1 }));
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === "validate") await validate(args);
else if (cmd === "to-pod") toPod(args[0], args[1]);
else { console.error("usage: k8s.mjs validate FILE... | to-pod FILE CLAIM"); process.exit(2); }
