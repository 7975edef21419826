// Offline validation of the rendered Kubernetes manifests (nix/k8s).
//   node validate.mjs ALL.yaml SETTINGS.json WORKDIR [single|cluster]
// single (the default): nix/k8s, one krappyd; cluster: nix/k8s/overlays/
// cluster, settings.clusterReplicas voters of one Raft cluster.
// Run by nix/ci/check-k8s.sh from a copy next to node_modules
// (build/k8s-check/), so the imports below resolve there.
//
// 1. schema: every object through kubernetes-models' validators (required
//    fields, types, enums, quantities);
// 2. fields: every object written into a .ts file as a literal of its
//    kubernetes-types type and `tsc --strict --noEmit` (catches unknown and
//    misspelt fields, which the validators let through);
// 3. cross-checks against nix/settings.nix (the image's values).
// Prints "ok   ..." / "FAIL ..." per check; exits 1 on any failure.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { Service } from "kubernetes-models/v1/Service";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";

const [allYaml, settingsJson, workDir, mode = "single"] = process.argv.slice(2);
if (!allYaml || !settingsJson || !workDir || !["single", "cluster"].includes(mode)) {
    console.error("usage: node validate.mjs ALL.yaml SETTINGS.json WORKDIR [single|cluster]");
    process.exit(2);
}
const cluster = mode === "cluster";

let failures = 0;
function check(ok, what, detail) {
    if (ok) {
        console.log(`ok   ${what}`);
    } else {
        failures++;
        console.log(`FAIL ${what}${detail ? `: ${detail}` : ""}`);
    }
    return ok;
}

// kind -> kubernetes-models class and kubernetes-types import.
const KINDS = {
    "apps/v1 StatefulSet": { model: StatefulSet, tsType: "StatefulSet", tsModule: "kubernetes-types/apps/v1" },
    "v1 Service": { model: Service, tsType: "Service", tsModule: "kubernetes-types/core/v1" },
    "policy/v1 PodDisruptionBudget": {
        model: PodDisruptionBudget, tsType: "PodDisruptionBudget", tsModule: "kubernetes-types/policy/v1",
    },
};

// --- parse -----------------------------------------------------------------
const docs = parseAllDocuments(readFileSync(allYaml, "utf8"));
const objects = [];
let parseOk = true;
for (const d of docs) {
    if (d.errors.length) {
        parseOk = false;
        check(false, "YAML parses", d.errors.map((e) => e.message).join("; "));
    }
    const o = d.toJS();
    if (o !== null && o !== undefined) objects.push(o);
}
if (parseOk) check(objects.length > 0, `rendered YAML parses (${objects.length} objects)`);

const name = (o) => `${o?.kind ?? "?"}/${o?.metadata?.name ?? "?"}`;

// --- 1. kubernetes-models validators ----------------------------------------
for (const o of objects) {
    const k = KINDS[`${o.apiVersion} ${o.kind}`];
    if (!check(k !== undefined, `${name(o)}: known kind ${o.apiVersion} ${o.kind}`)) continue;
    try {
        new k.model(o).validate();
        check(true, `${name(o)}: kubernetes-models schema`);
    } catch (e) {
        check(false, `${name(o)}: kubernetes-models schema`, String(e.message ?? e).replace(/\s+/g, " "));
    }
}

// --- 2. kubernetes-types + tsc --strict -------------------------------------
{
    mkdirSync(workDir, { recursive: true });
    const tsFile = path.join(workDir, "manifests.ts");
    const imports = new Map();
    const decls = [];
    objects.forEach((o, i) => {
        const k = KINDS[`${o.apiVersion} ${o.kind}`];
        if (!k) return;
        if (!imports.has(k.tsModule)) imports.set(k.tsModule, new Set());
        imports.get(k.tsModule).add(k.tsType);
        // A JSON object is a TS object literal: excess-property checks apply
        // at every nesting level, so a misspelt field is a type error.
        decls.push(`// ${name(o)}\nexport const object${i}: ${k.tsType} = ${JSON.stringify(o, null, 2)};\n`);
    });
    const src =
        [...imports].map(([m, ts]) => `import type { ${[...ts].join(", ")} } from "${m}";`).join("\n") +
        "\n\n" + decls.join("\n");
    writeFileSync(tsFile, src);
    const require = createRequire(import.meta.url);
    const tsc = require.resolve("typescript/bin/tsc");
    const r = spawnSync(process.execPath, [tsc, "--strict", "--noEmit", "--pretty", "false",
        "--target", "es2020", "--module", "commonjs", "--moduleResolution", "node",
        "--skipLibCheck", "false", tsFile], { encoding: "utf8" });
    const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
    check(r.status === 0, `kubernetes-types: tsc --strict --noEmit (${path.basename(tsFile)})`,
        out.split("\n").filter((l) => l.includes("error"))
            .map((l) => l.replace(/^.*manifests\.ts/, "")).slice(0, 10).join(" | ") || out);
}

// --- 3. cross-checks against nix/settings.nix -------------------------------
const settings = JSON.parse(readFileSync(settingsJson, "utf8"));
const services = objects.filter((o) => o.kind === "Service");
const sets = objects.filter((o) => o.kind === "StatefulSet");
check(sets.length === 1, "exactly one StatefulSet", `found ${sets.length}`);
const matches = (selector, labels) =>
    !!selector && Object.keys(selector).length > 0 &&
    Object.entries(selector).every(([k, v]) => labels?.[k] === v);
const eq = (a, b) => JSON.stringify(a) === JSON.stringify(b);

for (const sts of sets) {
    const n = name(sts);
    const spec = sts.spec ?? {};
    const pod = spec.template ?? {};
    const podLabels = pod.metadata?.labels ?? {};
    const podSpec = pod.spec ?? {};
    const containers = podSpec.containers ?? [];
    const c = containers.find((x) => x.name === settings.name) ?? containers[0] ?? {};

    check(matches(spec.selector?.matchLabels, podLabels) && !spec.selector?.matchExpressions,
        `${n}: selector matches the pod labels`, JSON.stringify(spec.selector));
    const replicas = cluster ? settings.clusterReplicas : 1;
    check(spec.replicas === replicas, `${n}: replicas ${replicas}`, String(spec.replicas));

    const headless = services.find((s) => s.metadata?.name === spec.serviceName);
    check(headless !== undefined && headless.spec?.clusterIP === "None",
        `${n}: serviceName names a headless Service (clusterIP None)`,
        headless ? `${spec.serviceName} has clusterIP ${headless.spec?.clusterIP}` : `no Service ${spec.serviceName}`);

    const args = cluster ? [...settings.args, ...settings.clusterArgs] : settings.args;
    check(eq(c.args, args), `${n}: args == settings.args${cluster ? " + settings.clusterArgs" : ""}`,
        JSON.stringify(c.args));
    const image = `${settings.name}:${settings.version}`;
    check(c.image === image, `${n}: image ${image}`, c.image);

    const ports = c.ports ?? [];
    const portBy = (p) => ports.find((x) => x.name === p || x.containerPort === p);
    check(portBy("data")?.containerPort === settings.dataPort,
        `${n}: port data = ${settings.dataPort}`, JSON.stringify(ports));
    check(portBy("admin")?.containerPort === settings.adminPort,
        `${n}: port admin = ${settings.adminPort}`, JSON.stringify(ports));
    check(portBy("kafka")?.containerPort === settings.kafkaPort,
        `${n}: port kafka = ${settings.kafkaPort}`, JSON.stringify(ports));
    // Kafka clients are sent to the advertised address: the pod's name in
    // the headless Service, on the Kafka port.
    const env = c.env ?? [];
    const envBy = (k) => env.find((e) => e.name === k);
    const adv = envBy("KRAPPY_KAFKA_ADVERTISE")?.value ?? "";
    const advIdx = env.findIndex((e) => e.name === "KRAPPY_KAFKA_ADVERTISE");
    check(adv === `$(POD_NAME).${spec.serviceName}.$(POD_NAMESPACE).svc:${settings.kafkaPort}`,
        `${n}: KRAPPY_KAFKA_ADVERTISE is the pod's name in ${spec.serviceName} on port ${settings.kafkaPort}`, adv);
    for (const [v, field] of [["POD_NAME", "metadata.name"], ["POD_NAMESPACE", "metadata.namespace"]]) {
        const i = env.findIndex((e) => e.name === v);
        check(i >= 0 && i < advIdx && env[i].valueFrom?.fieldRef?.fieldPath === field,
            `${n}: ${v} comes from ${field}, before KRAPPY_KAFKA_ADVERTISE uses it`, JSON.stringify(env[i]));
    }
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        const p = c[probe];
        if (!p) {
            check(probe === "startupProbe", `${n}: ${probe} present`);
            continue;
        }
        const port = p.httpGet?.port;
        check(port !== undefined && portBy(port) !== undefined,
            `${n}: ${probe} port ${port} exists on the container`);
        check(portBy(port)?.containerPort === settings.adminPort,
            `${n}: ${probe} probes the admin port`, String(port));
    }
    check(c.readinessProbe?.httpGet?.path === "/readyz", `${n}: readinessProbe GET /readyz`);
    check(c.livenessProbe?.httpGet?.path === "/healthz", `${n}: livenessProbe GET /healthz`);

    const dataMount = (c.volumeMounts ?? []).find((m) => m.mountPath === settings.dataDir);
    const claim = (spec.volumeClaimTemplates ?? []).find((t) => t.metadata?.name === dataMount?.name);
    check(dataMount !== undefined && claim !== undefined,
        `${n}: a volumeClaimTemplate is mounted at dataDir ${settings.dataDir}`,
        JSON.stringify(c.volumeMounts));

    const psc = podSpec.securityContext ?? {};
    const csc = c.securityContext ?? {};
    const uid = csc.runAsUser ?? psc.runAsUser;
    const gid = csc.runAsGroup ?? psc.runAsGroup;
    check(uid === settings.uid, `${n}: runAsUser == uid ${settings.uid}`, String(uid));
    check(gid === settings.gid, `${n}: runAsGroup == gid ${settings.gid}`, String(gid));
    check(psc.fsGroup === settings.gid, `${n}: fsGroup == gid ${settings.gid}`, String(psc.fsGroup));
    check((csc.runAsNonRoot ?? psc.runAsNonRoot) === true, `${n}: runAsNonRoot`);
    check(csc.readOnlyRootFilesystem === true, `${n}: readOnlyRootFilesystem`);
    check(csc.allowPrivilegeEscalation === false, `${n}: allowPrivilegeEscalation false`);
    check(eq(csc.capabilities?.drop, ["ALL"]), `${n}: capabilities drop ALL`);
    check((csc.seccompProfile ?? psc.seccompProfile)?.type === "RuntimeDefault", `${n}: seccomp RuntimeDefault`);
    // krappyd writes RocksDB's info log to /dev/shm when writable: with a
    // read-only root fs it needs a writable volume there.
    const shm = (c.volumeMounts ?? []).find((m) => m.mountPath === "/dev/shm");
    const shmVol = (podSpec.volumes ?? []).find((v) => v.name === shm?.name);
    check(shmVol?.emptyDir !== undefined && !shm.readOnly,
        `${n}: writable emptyDir at /dev/shm (RocksDB info log)`);

    const grace = podSpec.terminationGracePeriodSeconds;
    const stopping = settings.shutdownTimeoutSeconds + (cluster ? settings.handoverSeconds : 0);
    check(grace === settings.terminationGracePeriodSeconds && grace > stopping,
        `${n}: terminationGracePeriodSeconds ${grace} == settings and > ${cluster ? "handover + " : ""}shutdownTimeout (${stopping}s)`);

    if (cluster)
        clusterChecks(n, sts, c, headless, portBy, env);
    else
        check(!ports.some((p) => p.containerPort === settings.raftPort) &&
            !env.some((e) => e.name === "KRAPPY_PEERS") && !(c.args ?? []).includes("--raft-listen"),
            `${n}: a single node (no raft port, no --raft-listen, no KRAPPY_PEERS)`);

    // Every Service selects these pods and targets ports that exist.
    for (const s of services) {
        check(matches(s.spec?.selector, podLabels), `${name(s)}: selector matches the StatefulSet's pods`,
            JSON.stringify(s.spec?.selector));
        for (const sp of s.spec?.ports ?? []) {
            const t = sp.targetPort ?? sp.port;
            check(portBy(t) !== undefined, `${name(s)}: port ${sp.name ?? sp.port} targets a container port`, String(t));
        }
    }
    // The client Service(s): everything not headless exposes the data and
    // Kafka ports, never the admin port.
    const clients = services.filter((s) => s.spec?.clusterIP !== "None");
    check(clients.length >= 1, "a client Service (not headless) exists");
    const clientPorts = [settings.dataPort, settings.kafkaPort];
    for (const s of clients) {
        const exposed = (s.spec?.ports ?? []).map((sp) => portBy(sp.targetPort ?? sp.port)?.containerPort ?? sp.port);
        check(exposed.includes(settings.dataPort) && exposed.every((p) => clientPorts.includes(p)) &&
            (s.spec?.ports ?? []).every((sp) => sp.port !== settings.adminPort),
            `${name(s)}: client Service exposes only the data port ${settings.dataPort} and the Kafka port ${settings.kafkaPort}`,
            JSON.stringify(exposed));
    }
    // The headless Service publishes the Kafka port the advertised name uses.
    check((headless?.spec?.ports ?? []).some((sp) => portBy(sp.targetPort ?? sp.port)?.containerPort === settings.kafkaPort),
        `${spec.serviceName}: publishes the Kafka port ${settings.kafkaPort}`);
}

// The cluster overlay: three voters that find each other by DNS, started
// together, named by ordinal, with a disruption budget that keeps a quorum.
function clusterChecks(n, sts, c, headless, portBy, env) {
    const spec = sts.spec;
    const svc = spec.serviceName;
    const replicas = settings.clusterReplicas;
    check(spec.podManagementPolicy === "Parallel",
        `${n}: podManagementPolicy Parallel (a pod is ready only once a quorum elected a leader)`,
        String(spec.podManagementPolicy));
    const raftPort = portBy("raft");
    check(raftPort?.containerPort === settings.raftPort, `${n}: port raft = ${settings.raftPort}`,
        JSON.stringify(c.ports));
    const args = c.args ?? [];
    const flag = (f) => (args.indexOf(f) >= 0 ? args[args.indexOf(f) + 1] : undefined);
    check(String(flag("--raft-listen")).endsWith(`:${settings.raftPort}`),
        `${n}: --raft-listen on the raft port ${settings.raftPort}`, String(flag("--raft-listen")));
    check(flag("--node-id") === "auto", `${n}: --node-id auto (the pod's ordinal plus one)`,
        String(flag("--node-id")));
    const idx = (k) => env.findIndex((e) => e.name === k);
    const uses = (k) => idx("POD_NAME") >= 0 && idx("POD_NAMESPACE") >= 0 &&
        idx(k) > idx("POD_NAME") && idx(k) > idx("POD_NAMESPACE");
    const adv = env[idx("KRAPPY_ADVERTISE")]?.value ?? "";
    check(adv === `$(POD_NAME).${svc}.$(POD_NAMESPACE).svc:${settings.dataPort}` && uses("KRAPPY_ADVERTISE"),
        `${n}: KRAPPY_ADVERTISE is the pod's name in ${svc} on the data port ${settings.dataPort}`, adv);
    const want = Array.from({ length: replicas },
        (_, i) => `${i + 1}=${sts.metadata.name}-${i}.${svc}.$(POD_NAMESPACE).svc:${settings.raftPort}`).join(",");
    const peers = env[idx("KRAPPY_PEERS")]?.value ?? "";
    check(peers === want && uses("KRAPPY_PEERS"),
        `${n}: KRAPPY_PEERS names the ${replicas} pods in ${svc} on the raft port, id = ordinal + 1`,
        `${peers} (want ${want})`);
    check((headless?.spec?.ports ?? []).some((sp) => portBy(sp.targetPort ?? sp.port)?.containerPort === settings.raftPort),
        `${svc}: publishes the raft port ${settings.raftPort}`);
    check(headless?.spec?.publishNotReadyAddresses === true,
        `${svc}: publishNotReadyAddresses (peers resolve each other before any is ready)`);
    const podLabels = spec.template?.metadata?.labels ?? {};
    const pdbs = objects.filter((o) => o.kind === "PodDisruptionBudget");
    check(pdbs.length === 1, "exactly one PodDisruptionBudget", `found ${pdbs.length}`);
    for (const pdb of pdbs) {
        const quorum = Math.floor(replicas / 2) + 1;
        const mu = pdb.spec?.maxUnavailable;
        check(mu === 1 && pdb.spec?.minAvailable === undefined,
            `${name(pdb)}: maxUnavailable 1 (${replicas - 1} of ${replicas} stay, quorum ${quorum})`,
            JSON.stringify(pdb.spec));
        check(matches(pdb.spec?.selector?.matchLabels, podLabels) && !pdb.spec?.selector?.matchExpressions,
            `${name(pdb)}: selector matches the StatefulSet's pods`, JSON.stringify(pdb.spec?.selector));
    }
}

if (failures) {
    console.log(`FAIL ${failures} manifest check(s) failed`);
    process.exit(1);
}
