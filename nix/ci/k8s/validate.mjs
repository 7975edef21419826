// Offline validation of the rendered Kubernetes manifests (nix/k8s).
//   node validate.mjs ALL.yaml SETTINGS.json WORKDIR
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

const [allYaml, settingsJson, workDir] = process.argv.slice(2);
if (!allYaml || !settingsJson || !workDir) {
    console.error("usage: node validate.mjs ALL.yaml SETTINGS.json WORKDIR");
    process.exit(2);
}

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
    check(spec.replicas === 1, `${n}: replicas 1`, String(spec.replicas));

    const headless = services.find((s) => s.metadata?.name === spec.serviceName);
    check(headless !== undefined && headless.spec?.clusterIP === "None",
        `${n}: serviceName names a headless Service (clusterIP None)`,
        headless ? `${spec.serviceName} has clusterIP ${headless.spec?.clusterIP}` : `no Service ${spec.serviceName}`);

    check(eq(c.args, settings.args), `${n}: args == settings.args`, JSON.stringify(c.args));
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
    check(grace === settings.terminationGracePeriodSeconds && grace > settings.shutdownTimeoutSeconds,
        `${n}: terminationGracePeriodSeconds ${grace} == settings and > shutdownTimeout ${settings.shutdownTimeoutSeconds}s`);

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

if (failures) {
    console.log(`FAIL ${failures} manifest check(s) failed`);
    process.exit(1);
}
