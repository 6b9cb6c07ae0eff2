/**
 * deploy/k8s, checked without a cluster: every object against the schemas of a current Kubernetes release
 * (the kubernetes-models package, 1.34's OpenAPI), then what no schema sees: the pod policy of every
 * container, the zero-downtime rollout of every Deployment and the objects around it (Service, PDB,
 * autoscaler, migration Job), each service's environment accepted by its own config schema with the
 * Secrets scripts/k8s-secrets.ts makes, the NetworkPolicies against the trust model (docs/security.md),
 * the Redis roles against deploy/redis/*.conf, and the kustomizations against the files. Each policy check
 * is also shown failing on a broken copy. The Sentinel component (components/redis-sentinel) is built here as
 * kustomize builds it (resources, components, strategic-merge patches, namespace) into the overlay
 * stack-sentinel, and checked the same way.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { servicesOn } from '@atoll/redis-keys';
import { repoRoot } from '@atoll/testkit';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { redisPasswordVar } from '../../scripts/compose-credentials.ts';
import { K8S_SENTINELS, k8sSecrets, type SecretObject } from '../../scripts/k8s-secrets.ts';
import {
  allowed,
  isSecretVariable,
  type K8sObject,
  type Labelled,
  type Peer,
  podPolicyProblems,
  podTemplateOf,
  rolloutProblems,
} from './k8s-policy.ts';

// ---- the files -------------------------------------------------------------------------------------

const k8sDir = join(repoRoot, 'deploy', 'k8s');

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? yamlFiles(path) : /\.ya?ml$/.test(name) ? [path] : [];
    })
    .sort();
}

interface Loaded {
  file: string;
  object: K8sObject;
}

// Kubernetes reads manifests as YAML 1.1 (sigs.k8s.io/yaml): `yes` would be a boolean there, not a string.
const loaded: Loaded[] = yamlFiles(k8sDir).flatMap((path) => {
  const file = relative(repoRoot, path);
  return parseAllDocuments(readFileSync(path, 'utf8'), { version: '1.1' }).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return { file, object: doc.toJS() as K8sObject };
  });
});
const KUSTOMIZE_KINDS = ['Kustomization', 'Component'];
const kustomizations = loaded.filter((l) => KUSTOMIZE_KINDS.includes(l.object.kind));
// The stack's own manifests; a component's are objects and patches over them, checked once built (below).
const componentsDir = join('deploy', 'k8s', 'components');
const objects = loaded.filter(
  (l) => !KUSTOMIZE_KINDS.includes(l.object.kind) && !l.file.startsWith(componentsDir),
);
const ofKind = (kind: string) => objects.filter((l) => l.object.kind === kind).map((l) => l.object);
const named = (kind: string, name: string) => ofKind(kind).find((o) => o.metadata?.name === name);

const APPS = ['gateway', 'auth', 'content', 'notifier'] as const;
type App = (typeof APPS)[number];
const MIGRATED = ['auth', 'content', 'notifier'] as const;
const ROLES = ['cache', 'session', 'queue'] as const;
const PORTS: Record<App, number> = { gateway: 3000, auth: 3001, content: 3002, notifier: 3003 };

/** The model class of each kind the manifests may hold: anything else is an error. */
// The models type their data strictly; parsed YAML is checked by validate() instead.
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Namespace': Namespace,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

// ---- the services' own configuration --------------------------------------------------------------

interface EnvSchema {
  properties: Record<string, { 'x-secret'?: boolean }>;
}
interface ConfigModule {
  EnvSchema: EnvSchema;
  loadConfig: (env: Record<string, string | undefined>) => { port: number; host: string };
}
const configs = Object.fromEntries(
  await Promise.all(
    APPS.map(
      async (app) =>
        [
          app,
          (await import(pathToFileURL(join(repoRoot, 'apps', app, 'src/config.ts')).href)) as ConfigModule,
        ] as const,
    ),
  ),
) as Record<App, ConfigModule>;
const SECRET_NAMES = new Set(
  APPS.flatMap((app) =>
    Object.entries(configs[app].EnvSchema.properties)
      .filter(([, schema]) => schema['x-secret'])
      .map(([name]) => name),
  ),
);

/** The Secrets scripts/k8s-secrets.ts makes, with a METRICS_TOKEN and Google secret to cover every key. */
const K8S_CREDENTIALS = k8sSecrets(
  {},
  {
    postgresAddress: 'postgres:5432',
    smtpUrl: 'smtp://mailer:password@smtp.example.com:587',
    metricsToken: 'm'.repeat(40),
    googleClientSecret: 'google-client-secret',
  },
);
const SECRETS: SecretObject[] = K8S_CREDENTIALS.secrets;
/** A service's Redis password, as in its Secret's URLs. */
const k8sPassword = (app: App) => K8S_CREDENTIALS.env[redisPasswordVar(app)];
const secretValue = (name: string, key: string) =>
  SECRETS.find((s) => s.metadata.name === name)?.stringData[key];

/** A container's environment as the kubelet gives it: settings ConfigMaps, then env (which wins). */
function environmentOf(
  container: K8sObject,
  maps: K8sObject[] = ofKind('ConfigMap'),
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    const map = maps.find((m) => m.metadata?.name === from.configMapRef?.name);
    if (!map && !from.configMapRef?.optional) throw new Error(`no ConfigMap ${from.configMapRef?.name}`);
    Object.assign(env, map?.data ?? {});
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) {
      const value = secretValue(ref.name, ref.key);
      if (value === undefined && !ref.optional) throw new Error(`no key ${ref.key} in Secret ${ref.name}`);
      if (value !== undefined) env[e.name] = value;
    }
  }
  return env;
}

const deploymentOf = (app: App) => named('Deployment', app)!;
const containerOf = (owner: K8sObject) => owner.spec.template.spec.containers[0] as K8sObject;

/** Every Secret key the objects reference, as `<secret>/<key>` (`<secret>/*` for a whole Secret). */
function secretRefs(node: unknown, refs: string[] = []): string[] {
  if (Array.isArray(node)) for (const item of node) secretRefs(item, refs);
  else if (node && typeof node === 'object') {
    const o = node as K8sObject;
    if (o.secretKeyRef) refs.push(`${o.secretKeyRef.name}/${o.secretKeyRef.key}`);
    if (o.secret?.name) for (const item of o.secret.items ?? []) refs.push(`${o.secret.name}/${item.key}`);
    if (o.secretRef) refs.push(`${o.secretRef.name}/*`);
    for (const value of Object.values(o)) secretRefs(value, refs);
  }
  return refs;
}

interface Pod extends Labelled {
  name: string;
  ports: number[];
}

/** The pods the objects' templates make, by name, with their labels and ports. */
function podsOf(list: K8sObject[]): Pod[] {
  return list.flatMap((object) => {
    const template = podTemplateOf(object);
    if (!template) return [];
    return [
      {
        name: template.metadata.labels['app.kubernetes.io/name'],
        labels: template.metadata.labels,
        ports: template.spec.containers.flatMap((c: K8sObject) =>
          (c.ports ?? []).map((p: K8sObject) => p.containerPort),
        ),
      },
    ];
  });
}

/** Who may reach whom inside the namespace, from the trust model and the key map. */
const TRUST_MODEL_PATHS = [
  'gateway->auth:3001',
  'gateway->content:3002',
  'gateway->notifier:3003',
  // auth's internal profile route, with content's token.
  'content->auth:3001',
  ...ROLES.flatMap((role) => servicesOn(role, 'atoll').map((s) => `${s}->redis-${role}:6379`)),
];

const OUTSIDE = ['203.0.113.7', '2001:db8::7'];
const PRIVATE = ['10.1.2.3', '192.168.1.1', '172.20.0.1', 'fd00::1'];

// ---- kustomize, as far as these manifests use it --------------------------------------------------

/**
 * The list fields a strategic-merge patch merges item by item (Kubernetes' patchMergeKey), by that key;
 * any other list is replaced whole, as Kubernetes does for lists without one (a projected volume's
 * sources, a policy's rules, a command).
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
};

function strategicMerge(target: unknown, patch: unknown, field = ''): unknown {
  if (Array.isArray(patch)) {
    const key = MERGE_KEYS[field];
    if (!key || !Array.isArray(target)) return structuredClone(patch);
    const merged = structuredClone(target) as K8sObject[];
    for (const item of patch as K8sObject[]) {
      const at = merged.findIndex((t) => t[key] === item[key]);
      if (at >= 0) merged[at] = strategicMerge(merged[at], item) as K8sObject;
      else merged.push(structuredClone(item));
    }
    return merged;
  }
  if (patch && typeof patch === 'object') {
    const merged: K8sObject = target && typeof target === 'object' ? { ...(target as K8sObject) } : {};
    for (const [name, value] of Object.entries(patch))
      merged[name] = strategicMerge(merged[name], value, name);
    return merged;
  }
  return patch;
}

const docsIn = (file: string) => loaded.filter((l) => l.file === file).map((l) => structuredClone(l.object));

/** What `kustomize build <dir>` makes: resources (files and directories), components, patches, namespace. */
function kustomizeBuild(dir: string): K8sObject[] {
  const k = kustomizationAt(dir);
  const built: K8sObject[] = [];
  const fileOrDir = (entry: string, from: string) => {
    const target = relative(repoRoot, resolve(repoRoot, from, entry));
    return statSync(join(repoRoot, target)).isDirectory() ? kustomizeBuild(target) : docsIn(target);
  };
  for (const entry of k.resources ?? []) built.push(...fileOrDir(entry, dir));
  const applyPatches = (patches: K8sObject[], from: string) => {
    for (const { path } of patches)
      for (const patch of docsIn(relative(repoRoot, resolve(repoRoot, from, path)))) {
        const at = built.findIndex((o) => o.kind === patch.kind && o.metadata?.name === patch.metadata?.name);
        if (at < 0)
          throw new Error(`${from}: ${path} patches ${patch.kind} ${patch.metadata?.name}, not built`);
        built[at] = strategicMerge(built[at], patch) as K8sObject;
      }
  };
  for (const entry of k.components ?? []) {
    const componentDir = relative(repoRoot, resolve(repoRoot, dir, entry));
    const component = kustomizationAt(componentDir);
    expect(component.kind, componentDir).toBe('Component');
    for (const file of component.resources ?? []) built.push(...fileOrDir(file, componentDir));
    applyPatches(component.patches ?? [], componentDir);
  }
  applyPatches(k.patches ?? [], dir);
  if (k.namespace)
    for (const o of built) if (o.kind !== 'Namespace') o.metadata = { ...o.metadata, namespace: k.namespace };
  return built;
}

function kustomizationAt(dir: string): K8sObject {
  const found = kustomizations.find((k) => dirname(k.file) === dir);
  if (!found) throw new Error(`no kustomization.yaml in ${dir}`);
  return found.object;
}

/** The stack with redis-session and redis-queue as Sentinel groups, as kustomize builds it. */
const SENTINEL_STACK = kustomizeBuild('deploy/k8s/overlays/stack-sentinel');

// ---- the tests -------------------------------------------------------------------------------------

describe('deploy/k8s', () => {
  it('holds only objects of the kinds it means, each valid against the Kubernetes schemas', () => {
    expect(objects.length).toBeGreaterThan(30);
    for (const { file, object } of objects) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      expect(Model, `${file}: ${object.apiVersion} ${object.kind}`).toBeDefined();
      expect(
        () => new Model!(object).validate(),
        `${file}: ${object.kind} ${object.metadata?.name}`,
      ).not.toThrow();
    }
  });

  it('catches a schema error (the validator is not a no-op)', () => {
    const broken = structuredClone(deploymentOf('gateway'));
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    expect(() => new Deployment(broken).validate()).toThrow(/containerPort must be integer/);
  });

  it('commits no Secret and no credential', () => {
    expect(ofKind('Secret')).toEqual([]);
    for (const { file, object } of objects) {
      const text = JSON.stringify(object);
      expect(text, file).not.toMatch(/[a-z]+:\/\/[^/\s:@"]+:[^/\s@"]+@/i);
      expect(text, file).not.toMatch(/PRIVATE KEY/);
    }
    // The settings ConfigMaps hold no secret variable.
    for (const map of ofKind('ConfigMap').filter((m) => m.metadata.name.endsWith('-settings')))
      for (const name of Object.keys(map.data ?? {}))
        expect(isSecretVariable(name, SECRET_NAMES), `${map.metadata.name}: ${name}`).toBe(false);
  });

  it('holds every container of every pod template to the pod policy', () => {
    const owners = objects.filter((l) => podTemplateOf(l.object));
    expect(owners.map((l) => `${l.object.kind}/${l.object.metadata.name}`).sort()).toEqual(
      [
        ...APPS.map((a) => `Deployment/${a}`),
        ...MIGRATED.map((a) => `Job/${a}-migrate`),
        ...ROLES.map((r) => `StatefulSet/redis-${r}`),
      ].sort(),
    );
    for (const { file, object } of owners)
      expect(
        podPolicyProblems(`${file} ${object.metadata.name}`, podTemplateOf(object)!, SECRET_NAMES),
      ).toEqual([]);
  });

  it('catches each break of the pod policy on a copy', () => {
    const template = () => structuredClone(podTemplateOf(deploymentOf('gateway'))!);
    const breaks: Array<[string, (t: K8sObject) => void, RegExp]> = [
      [
        'runAsNonRoot dropped',
        (t) => delete t.spec.containers[0].securityContext.runAsNonRoot,
        /runAsNonRoot/,
      ],
      ['pod runAsNonRoot false', (t) => (t.spec.securityContext.runAsNonRoot = false), /runAsNonRoot/],
      ['root', (t) => (t.spec.containers[0].securityContext.runAsUser = 0), /runAsUser/],
      [
        'writable root',
        (t) => (t.spec.containers[0].securityContext.readOnlyRootFilesystem = false),
        /readOnlyRootFilesystem/,
      ],
      [
        'escalation',
        (t) => delete t.spec.containers[0].securityContext.allowPrivilegeEscalation,
        /allowPrivilegeEscalation/,
      ],
      [
        'a capability kept',
        (t) => (t.spec.containers[0].securityContext.capabilities.drop = ['NET_RAW']),
        /ALL/,
      ],
      [
        'a capability added',
        (t) => (t.spec.containers[0].securityContext.capabilities.add = ['NET_ADMIN']),
        /adds capabilities/,
      ],
      [
        'unconfined',
        (t) => {
          t.spec.securityContext.seccompProfile = { type: 'Unconfined' };
          t.spec.containers[0].securityContext.seccompProfile = { type: 'Unconfined' };
        },
        /seccomp/,
      ],
      ['no memory limit', (t) => delete t.spec.containers[0].resources.limits.memory, /memory limits/],
      ['no cpu request', (t) => delete t.spec.containers[0].resources.requests.cpu, /cpu requests/],
      ['latest', (t) => (t.spec.containers[0].image = 'atoll/gateway:latest'), /pinned tag/],
      ['untagged', (t) => (t.spec.containers[0].image = 'atoll/gateway'), /pinned tag/],
      [
        'a literal secret',
        (t) =>
          t.spec.containers[0].env.push({
            name: 'REDIS_SESSION_URL',
            value: 'redis://gateway:pw@redis:6379',
          }),
        /literal value/,
      ],
      [
        'a literal token',
        (t) => t.spec.containers[0].env.push({ name: 'METRICS_TOKEN', value: 'x'.repeat(40) }),
        /METRICS_TOKEN/,
      ],
      ['token mounted', (t) => (t.spec.automountServiceAccountToken = true), /automountServiceAccountToken/],
      ['host network', (t) => (t.spec.hostNetwork = true), /host namespace/],
      ['privileged init', (t) => (t.spec.initContainers = [{ name: 'init', image: 'busybox:1' }]), /init/],
    ];
    for (const [what, change, expected] of breaks) {
      const t = template();
      change(t);
      const problems = podPolicyProblems('copy', t, SECRET_NAMES);
      expect(problems.join('\n'), what).toMatch(expected);
    }
  });

  it.each(APPS)('rolls %s out with zero downtime: probes, maxUnavailable 0, preStop, grace', (app) => {
    const deployment = deploymentOf(app);
    expect(rolloutProblems(deployment)).toEqual([]);
    const container = containerOf(deployment);
    expect(container.ports).toEqual([{ name: 'http', containerPort: PORTS[app], protocol: 'TCP' }]);
    expect(container.command).toEqual(['node', 'dist/main.js']);
    expect(container.image).toBe(`atoll/${app}:dev`);
    expect(deployment.spec.template.spec.enableServiceLinks).toBe(false);
  });

  it('catches each break of the rollout policy on a copy', () => {
    const breaks: Array<[string, (d: K8sObject) => void, RegExp]> = [
      ['maxUnavailable 1', (d) => (d.spec.strategy.rollingUpdate.maxUnavailable = 1), /maxUnavailable/],
      ['recreate', (d) => (d.spec.strategy = { type: 'Recreate' }), /RollingUpdate/],
      ['no readiness', (d) => delete d.spec.template.spec.containers[0].readinessProbe, /readinessProbe/],
      [
        'liveness on readiness',
        (d) => (d.spec.template.spec.containers[0].livenessProbe.httpGet.path = '/health/ready'),
        /livenessProbe/,
      ],
      ['no preStop', (d) => delete d.spec.template.spec.containers[0].lifecycle, /preStop/],
      ['short grace', (d) => (d.spec.template.spec.terminationGracePeriodSeconds = 12), /outlast/],
      ['fixed replicas', (d) => (d.spec.replicas = 3), /replicas/],
    ];
    for (const [what, change, expected] of breaks) {
      const d = structuredClone(deploymentOf('auth'));
      change(d);
      expect(rolloutProblems(d).join('\n'), what).toMatch(expected);
    }
  });

  it.each(APPS)('gives %s a Service, a PodDisruptionBudget and an autoscaler of its own', (app) => {
    const deployment = deploymentOf(app);
    const labels = deployment.spec.template.metadata.labels;
    expect(deployment.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': app });
    expect(labels).toMatchObject(deployment.spec.selector.matchLabels);

    const service = named('Service', app)!;
    expect(service, `Service ${app}`).toBeDefined();
    expect(labels).toMatchObject(service.spec.selector);
    expect(service.spec.ports).toEqual([
      { name: 'http', port: PORTS[app], targetPort: 'http', protocol: 'TCP' },
    ]);

    const pdb = ofKind('PodDisruptionBudget').find((p) => p.metadata.name === app)!;
    expect(pdb, `PodDisruptionBudget ${app}`).toBeDefined();
    expect(pdb.spec.selector).toEqual(deployment.spec.selector);
    expect(pdb.spec.maxUnavailable).toBe(1);

    const hpa = ofKind('HorizontalPodAutoscaler').find((h) => h.metadata.name === app)!;
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: app });
    // Two at least: a PodDisruptionBudget of one unavailable pod then never empties the service.
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
    expect(hpa.spec.metrics[0].resource.name).toBe('cpu');
  });

  it.each(APPS)('gives %s an environment its own config schema accepts, secrets by reference only', (app) => {
    const container = containerOf(deploymentOf(app));
    const properties = configs[app].EnvSchema.properties;
    // No variable the service does not read (a typo would be silently ignored).
    const names = [
      ...(container.env ?? []).map((e: K8sObject) => e.name as string),
      ...(container.envFrom ?? []).flatMap((f: K8sObject) =>
        Object.keys(named('ConfigMap', f.configMapRef.name)?.data ?? {}),
      ),
    ];
    for (const name of names) expect(properties, `${app} reads ${name}`).toHaveProperty([name]);
    for (const e of container.env ?? [])
      if (isSecretVariable(e.name, SECRET_NAMES))
        expect(e.valueFrom?.secretKeyRef?.name, `${app} ${e.name}`).toMatch(/^atoll-/);
    const env = environmentOf(container);
    const config = configs[app].loadConfig(env);
    expect(config.port).toBe(PORTS[app]);
    expect(config.host).toBe('0.0.0.0');
    // Only the gateway holds the signing key; the others only the public one.
    expect('IDENTITY_PRIVATE_KEY' in env).toBe(app === 'gateway');
    expect('IDENTITY_PUBLIC_KEYS' in env).toBe(app !== 'gateway');
    // The Redis roles it is handed are exactly the ones its user exists on.
    const roles = Object.keys(env)
      .map((name) => /^REDIS_([A-Z]+)_URL$/.exec(name)?.[1]?.toLowerCase())
      .filter(Boolean)
      .sort();
    expect(roles).toEqual(ROLES.filter((r) => servicesOn(r, 'atoll').includes(app)).sort());
    for (const role of roles) expect(env[`REDIS_${role!.toUpperCase()}_URL`]).toMatch(`redis://${app}:`);
  });

  it.each(MIGRATED)(
    'migrates %s with a Job of its own image, as the schema owner, before the rollout',
    (app) => {
      const job = named('Job', `${app}-migrate`)!;
      const container = containerOf(job);
      expect(container.image).toBe(containerOf(deploymentOf(app)).image);
      expect(container.command).toEqual(['node', 'dist/migrate.js']);
      expect(job.spec.template.spec.restartPolicy).toBe('Never');
      expect(job.spec.backoffLimit).toBeGreaterThanOrEqual(0);
      expect(environmentOf(container).DATABASE_URL).toMatch(`postgres://atoll_${app}_owner:`);
      expect(environmentOf(containerOf(deploymentOf(app))).DATABASE_URL).toMatch(`postgres://atoll_${app}:`);
      // Not in the service's own kustomization (applied with it, it would race the rollout), but in its
      // migrate/ one and in the migrations overlay.
      expect(resourcesOf(`deploy/k8s/base/${app}`).has(`deploy/k8s/base/${app}/migrate/job.yaml`)).toBe(
        false,
      );
      expect(
        resourcesOf(`deploy/k8s/base/${app}/migrate`).has(`deploy/k8s/base/${app}/migrate/job.yaml`),
      ).toBe(true);
      expect(
        resourcesOf('deploy/k8s/overlays/migrations').has(`deploy/k8s/base/${app}/migrate/job.yaml`),
      ).toBe(true);
      expect(resourcesOf('deploy/k8s/overlays/stack').has(`deploy/k8s/base/${app}/migrate/job.yaml`)).toBe(
        false,
      );
    },
  );

  it('references only Secrets and keys scripts/k8s-secrets.ts makes', () => {
    const refs = secretRefs(objects.map((l) => l.object));
    expect(refs.length).toBeGreaterThan(20);
    for (const ref of refs) {
      const [name = '', key = ''] = ref.split('/');
      expect(secretValue(name, key), ref).toBeDefined();
    }
    // And every Secret it makes is used, by the stack or by the Sentinel overlay.
    const used = [...refs, ...secretRefs(SENTINEL_STACK)];
    for (const s of SECRETS)
      expect(
        used.some((r) => r.startsWith(`${s.metadata.name}/`)),
        s.metadata.name,
      ).toBe(true);
  });

  it('runs each Redis role from its deploy/redis file, with its ACL users and nothing else', () => {
    for (const role of ROLES) {
      const name = `redis-${role}`;
      const map = named('ConfigMap', name)!;
      expect(map.data[`${role}.conf`]).toBe(
        readFileSync(join(repoRoot, 'deploy', 'redis', `${role}.conf`), 'utf8'),
      );
      const set = named('StatefulSet', name)!;
      expect(set.spec.replicas).toBe(1);
      expect(set.spec.serviceName).toBe(name);
      expect(named('Service', name)?.spec.ports[0].port).toBe(6379);
      const container = containerOf(set);
      expect(container.image).toBe('redis:7.0');
      expect(container.command).toEqual([
        'redis-server',
        `/usr/local/etc/redis/${role}.conf`,
        '--bind',
        '0.0.0.0',
        '--port',
        '6379',
        '--dir',
        '/data',
        '--aclfile',
        '/usr/local/etc/redis/users.acl',
      ]);
      const sources = set.spec.template.spec.volumes.find((v: K8sObject) => v.name === 'config').projected
        .sources;
      expect(sources).toContainEqual({ configMap: { name } });
      // The ACL file is the one made from the key map, with a user for each service on the role.
      const acl = secretValue(`atoll-${name}-acl`, 'users.acl')!;
      for (const service of servicesOn(role, 'atoll'))
        expect(acl).toMatch(new RegExp(`^user ${service} `, 'm'));
      // Persistent roles keep their data on a volume.
      const claims = (set.spec.volumeClaimTemplates ?? []).map((c: K8sObject) => c.metadata.name);
      expect(claims).toEqual(role === 'cache' ? [] : ['data']);
    }
  });

  describe('NetworkPolicies: only the paths of the trust model', () => {
    const policies = ofKind('NetworkPolicy');
    const pods = podsOf(objects.map((l) => l.object));
    const pod = (name: string): Peer => ({ pod: pods.find((p) => p.name === name) as Labelled });

    const expected = new Set(TRUST_MODEL_PATHS);

    it('admits exactly the expected connections between the namespace’s pods', () => {
      const actual = new Set<string>();
      for (const from of pods)
        for (const to of pods)
          for (const port of to.ports)
            if (from !== to && allowed(policies, { pod: from }, { pod: to }, port))
              actual.add(`${from.name}->${to.name}:${port}`);
      expect([...actual].sort()).toEqual([...expected].sort());
    });

    it('lets only the gateway take traffic from outside the namespace', () => {
      for (const to of pods)
        for (const port of to.ports)
          for (const address of OUTSIDE)
            expect(
              allowed(policies, { outside: address }, { pod: to }, port),
              `${address} -> ${to.name}:${port}`,
            ).toBe(to.name === 'gateway' && port === 3000);
    });

    it('lets each pod out only to DNS, PostgreSQL, Google and SMTP as it needs', () => {
      const out: Record<string, number[]> = {
        gateway: [],
        auth: [5432, 443],
        content: [5432],
        notifier: [5432, 25, 465, 587],
        'auth-migrate': [5432],
        'content-migrate': [5432],
        'notifier-migrate': [5432],
        'redis-cache': [],
        'redis-session': [],
        'redis-queue': [],
      };
      expect(Object.keys(out).sort()).toEqual(pods.map((p) => p.name).sort());
      for (const p of pods) {
        const dns = !p.name.startsWith('redis-');
        expect(allowed(policies, pod(p.name), { dns: true }, 53, 'UDP'), `${p.name} DNS`).toBe(dns);
        expect(allowed(policies, pod(p.name), { dns: true }, 53, 'TCP'), `${p.name} DNS`).toBe(dns);
        for (const port of [25, 80, 443, 465, 587, 5432, 6379, 8080])
          for (const address of OUTSIDE)
            expect(
              allowed(policies, pod(p.name), { outside: address }, port),
              `${p.name} -> ${address}:${port}`,
            ).toBe(out[p.name]!.includes(port));
        // HTTPS and SMTP reach the internet, never private addresses (the cluster's own, a metadata service).
        for (const port of [25, 443, 465, 587])
          for (const address of [...PRIVATE, '169.254.169.254'])
            expect(
              allowed(policies, pod(p.name), { outside: address }, port),
              `${p.name} -> ${address}:${port}`,
            ).toBe(false);
      }
    });

    it('isolates every pod with its own policy, with or without the namespace default deny', () => {
      const own = policies.filter((p) => p.metadata.name !== 'default-deny');
      const deny = policies.find((p) => p.metadata.name === 'default-deny')!;
      expect(deny.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
      for (const p of pods) {
        const selecting = own.filter((policy) =>
          Object.entries(policy.spec.podSelector.matchLabels ?? {}).every(([k, v]) => p.labels[k] === v),
        );
        expect(
          selecting.map((s) => s.metadata.name),
          p.name,
        ).toEqual([p.name]);
        expect(selecting[0]!.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      }
    });

    it('catches a policy that admits too much (the evaluator is not a no-op)', () => {
      const opened = structuredClone(policies);
      const auth = opened.find((p) => p.metadata.name === 'auth')!;
      auth.spec.ingress[0].from = undefined;
      expect(allowed(opened, pod('notifier'), pod('auth'), 3001)).toBe(false); // the notifier's egress stops it
      expect(allowed(opened, { outside: OUTSIDE[0]! }, pod('auth'), 3001)).toBe(true);
      expect(allowed(policies, { outside: OUTSIDE[0]! }, pod('auth'), 3001)).toBe(false);
    });
  });

  // ---- kustomize -----------------------------------------------------------------------------------

  /** The files and directories a kustomization names: resources, components, patches. */
  const referencedBy = (k: K8sObject): string[] => [
    ...(k.resources ?? []),
    ...(k.components ?? []),
    ...(k.patches ?? []).map((p: K8sObject) => p.path),
  ];

  /**
   * Every file a kustomization applies, following directories to their own kustomization, and its
   * components' files and patches.
   */
  function resourcesOf(dir: string): Set<string> {
    const files = new Set<string>();
    for (const entry of referencedBy(kustomizationAt(dir))) {
      const target = relative(repoRoot, resolve(repoRoot, dir, entry));
      if (statSync(join(repoRoot, target)).isDirectory()) for (const f of resourcesOf(target)) files.add(f);
      else files.add(target);
    }
    return files;
  }

  it('kustomizations reference only existing files, and every manifest is in one', () => {
    for (const { file, object } of kustomizations) {
      expect(object.apiVersion, file).toBe(
        object.kind === 'Component' ? 'kustomize.config.k8s.io/v1alpha1' : 'kustomize.config.k8s.io/v1beta1',
      );
      const dir = dirname(file);
      for (const entry of referencedBy(object)) {
        const target = resolve(repoRoot, dir, entry);
        expect(() => statSync(target), `${file}: ${entry}`).not.toThrow();
        // kustomize loads files only from its own directory tree; other directories need a kustomization.
        if (statSync(target).isDirectory())
          expect(() => kustomizationAt(relative(repoRoot, target))).not.toThrow();
        else expect(relative(join(repoRoot, dir), target).startsWith('..'), `${file}: ${entry}`).toBe(false);
      }
    }
    const reached = new Set([
      ...resourcesOf('deploy/k8s/overlays/stack'),
      ...resourcesOf('deploy/k8s/overlays/migrations'),
    ]);
    const manifests = new Set(objects.map((l) => l.file));
    expect([...manifests].sort()).toEqual([...reached].sort());
    // The Sentinel overlay is the stack plus the component, whose every file it applies.
    const sentinel = resourcesOf('deploy/k8s/overlays/stack-sentinel');
    const componentFiles = loaded
      .filter((l) => l.file.startsWith(componentsDir) && !KUSTOMIZE_KINDS.includes(l.object.kind))
      .map((l) => l.file);
    expect([...sentinel].sort()).toEqual(
      [...new Set([...resourcesOf('deploy/k8s/overlays/stack'), ...componentFiles])].sort(),
    );
  });

  it('the overlays put everything in one namespace with the same images', () => {
    const stack = kustomizationAt('deploy/k8s/overlays/stack');
    const migrations = kustomizationAt('deploy/k8s/overlays/migrations');
    expect(stack.namespace).toBe('atoll');
    expect(migrations.namespace).toBe('atoll');
    expect(named('Namespace', 'atoll')?.metadata.labels['pod-security.kubernetes.io/enforce']).toBe(
      'restricted',
    );
    for (const image of migrations.images) expect(stack.images).toContainEqual(image);
    expect(stack.images.map((i: K8sObject) => i.name).sort()).toEqual(APPS.map((a) => `atoll/${a}`).sort());
    // No manifest sets a namespace of its own: the overlay (or `kubectl -n`) decides.
    for (const { file, object } of objects)
      if (object.kind !== 'Namespace') expect(object.metadata.namespace, file).toBeUndefined();
    for (const app of APPS)
      expect(resourcesOf('deploy/k8s/overlays/stack')).toContain(`deploy/k8s/base/${app}/deployment.yaml`);
  });
});

describe('deploy/k8s/overlays/stack-sentinel: redis-session and redis-queue as Sentinel groups', () => {
  const built = SENTINEL_STACK;
  const find = (kind: string, name: string) =>
    built.find((o) => o.kind === kind && o.metadata?.name === name) as K8sObject;
  const GROUPS = ['session', 'queue'] as const;
  const sentinelSet = () => find('StatefulSet', 'redis-sentinel');

  it('builds the stack plus the sentinels, each object valid against the Kubernetes schemas', () => {
    const stack = kustomizeBuild('deploy/k8s/overlays/stack');
    const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
    const added = built.map(key).filter((k) => !stack.map(key).includes(k));
    expect(added.sort()).toEqual(
      [
        'ConfigMap/redis-sentinel-scripts',
        'Service/redis-sentinel',
        'StatefulSet/redis-sentinel',
        'PodDisruptionBudget/redis-sentinel',
        'NetworkPolicy/redis-sentinel',
        'NetworkPolicy/redis-session-group',
        'NetworkPolicy/redis-queue-group',
        ...APPS.map((a) => `NetworkPolicy/${a}-redis-sentinel`),
      ].sort(),
    );
    expect(built.length).toBe(stack.length + added.length);
    for (const object of built) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      expect(Model, `${object.apiVersion} ${object.kind}`).toBeDefined();
      expect(() => new Model!(object).validate(), key(object)).not.toThrow();
      if (object.kind !== 'Namespace') expect(object.metadata.namespace, key(object)).toBe('atoll');
    }
    expect(JSON.stringify(built)).not.toMatch(/[a-z+]+:\/\/[^/\s:@"]+:[^/\s@"]+@/i);
  });

  it('holds every container to the pod policy, the sentinels’ too', () => {
    const owners = built.filter((o) => podTemplateOf(o));
    expect(owners.map((o) => `${o.kind}/${o.metadata.name}`)).toContain('StatefulSet/redis-sentinel');
    for (const owner of owners)
      expect(
        podPolicyProblems(`${owner.kind} ${owner.metadata.name}`, podTemplateOf(owner)!, SECRET_NAMES),
      ).toEqual([]);
    // The check sees the sentinels: a broken copy fails.
    const broken = structuredClone(podTemplateOf(sentinelSet())!);
    broken.spec.containers[0].securityContext.readOnlyRootFilesystem = false;
    expect(podPolicyProblems('copy', broken).join('\n')).toMatch(/readOnlyRootFilesystem/);
  });

  it('ships the scripts byte for byte from deploy/redis', () => {
    const scripts = find('ConfigMap', 'redis-sentinel-scripts');
    for (const file of ['sentinel-node.sh', 'sentinel.sh'])
      expect(scripts.data[file], file).toBe(readFileSync(join(repoRoot, 'deploy', 'redis', file), 'utf8'));
  });

  it.each(GROUPS)('runs redis-%s as a primary and a replica from the role file, named by pod', (role) => {
    const name = `redis-${role}`;
    const set = find('StatefulSet', name);
    expect(set.spec.replicas).toBe(2);
    const container = containerOf(set);
    expect(container.command).toEqual(['sh', '/usr/local/etc/redis/sentinel-node.sh']);
    const env = Object.fromEntries(
      container.env.map((e: K8sObject) => [e.name, e.value ?? e.valueFrom]),
    ) as Record<string, K8sObject>;
    expect(env.POD_NAME).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(env.REDIS_ROLE).toBe(role);
    // Its own pod's name under its headless Service, the first pod's as the first primary.
    expect(env.REDIS_ANNOUNCE).toBe(`$(POD_NAME).${set.spec.serviceName}`);
    expect(env.REDIS_FIRST_PRIMARY).toBe(`${name}-0.${set.spec.serviceName}`);
    expect(env.REDIS_REPLICA_PASSWORD).toEqual({
      secretKeyRef: { name: 'atoll-redis-replication', key: 'REDIS_REPLICA_PASSWORD' },
    });
    expect(find('Service', set.spec.serviceName).spec).toMatchObject({
      clusterIP: 'None',
      publishNotReadyAddresses: true,
    });
    const sources = set.spec.template.spec.volumes.find((v: K8sObject) => v.name === 'config').projected
      .sources;
    expect(sources).toEqual([
      { configMap: { name } },
      {
        configMap: {
          name: 'redis-sentinel-scripts',
          items: [{ key: 'sentinel-node.sh', path: 'sentinel-node.sh' }],
        },
      },
      { secret: { name: `atoll-${name}-sentinel-acl`, items: [{ key: 'users.acl', path: 'users.acl' }] } },
    ]);
    // The data and the rewritten file on the node's volume; the role file unchanged.
    expect(set.spec.volumeClaimTemplates.map((c: K8sObject) => c.metadata.name)).toEqual(['data']);
    expect(find('ConfigMap', name).data[`${role}.conf`]).toBe(
      readFileSync(join(repoRoot, 'deploy', 'redis', `${role}.conf`), 'utf8'),
    );
    const acl = secretValue(`atoll-${name}-sentinel-acl`, 'users.acl')!;
    for (const user of [...servicesOn(role, 'atoll'), 'audit', 'replica', 'sentinel'])
      expect(acl).toMatch(new RegExp(`^user ${user} `, 'm'));
  });

  it('runs three sentinels over both groups, by pod name, with the users from their Secret', () => {
    const set = sentinelSet();
    expect(set.spec.replicas).toBe(3);
    const container = containerOf(set);
    expect(container.command).toEqual(['sh', '/usr/local/etc/redis/sentinel.sh']);
    const env = Object.fromEntries(container.env.map((e: K8sObject) => [e.name, e.value ?? e.valueFrom]));
    expect(env.SENTINEL_ANNOUNCE).toBe(`$(POD_NAME).${set.spec.serviceName}`);
    expect(env.SENTINEL_MASTERS).toBe(
      GROUPS.map((role) => {
        const nodes = find('StatefulSet', `redis-${role}`);
        return `atoll-${role}=${nodes.metadata.name}-0.${nodes.spec.serviceName}`;
      }).join(' '),
    );
    expect(find('Service', set.spec.serviceName).spec.publishNotReadyAddresses).toBe(true);
    expect(set.spec.volumeClaimTemplates.map((c: K8sObject) => c.metadata.name)).toEqual(['data']);
    const users = secretValue('atoll-redis-sentinel', 'users.acl')!;
    for (const user of ['default', 'sentinel', 'audit', ...APPS])
      expect(users).toMatch(new RegExp(`^user ${user} `, 'm'));
    expect(find('PodDisruptionBudget', 'redis-sentinel').spec.maxUnavailable).toBe(1);
    // The addresses the services' URLs name are this StatefulSet's pods.
    expect(K8S_SENTINELS).toEqual(
      Array.from({ length: 3 }, (_, i) => `${set.metadata.name}-${i}.${set.spec.serviceName}:26379`),
    );
  });

  it.each(APPS)('hands %s its Sentinel URLs, which its own config schema accepts', (app) => {
    const container = containerOf(find('Deployment', app));
    const env = environmentOf(
      container,
      built.filter((o) => o.kind === 'ConfigMap'),
    );
    expect(configs[app].loadConfig(env).port).toBe(PORTS[app]);
    const password = k8sPassword(app);
    for (const role of ROLES) {
      const url = env[`REDIS_${role.toUpperCase()}_URL`];
      if (!servicesOn(role, 'atoll').includes(app)) expect(url, role).toBeUndefined();
      else if (role === 'cache') expect(url).toBe(`redis://${app}:${password}@redis-cache:6379`);
      else expect(url).toBe(`redis+sentinel://${app}:${password}@${K8S_SENTINELS.join(',')}/atoll-${role}`);
    }
    for (const ref of secretRefs(container)) {
      const [name = '', key = ''] = ref.split('/');
      expect(secretValue(name, key), ref).toBeDefined();
    }
  });

  it('references only Secrets and keys scripts/k8s-secrets.ts makes', () => {
    for (const ref of secretRefs(built)) {
      const [name = '', key = ''] = ref.split('/');
      expect(secretValue(name, key), ref).toBeDefined();
    }
  });

  describe('NetworkPolicies: the group’s paths and nothing more', () => {
    const policies = built.filter((o) => o.kind === 'NetworkPolicy');
    const pods = podsOf(built);
    const pod = (name: string): Peer => ({ pod: pods.find((p) => p.name === name) as Labelled });
    const users = (role: 'session' | 'queue') => servicesOn(role, 'atoll');
    const expected = new Set([
      ...TRUST_MODEL_PATHS,
      // A service asks the sentinels where the primary is, then talks to it.
      ...new Set([...users('session'), ...users('queue')].map((s) => `${s}->redis-sentinel:26379`)),
      'redis-sentinel->redis-sentinel:26379',
      'redis-sentinel->redis-session:6379',
      'redis-sentinel->redis-queue:6379',
      // Replication, either way after a failover: between the pods of one StatefulSet.
      'redis-session->redis-session:6379',
      'redis-queue->redis-queue:6379',
    ]);

    it('admits exactly the expected connections, between pods of one StatefulSet too', () => {
      const actual = new Set<string>();
      for (const from of pods)
        for (const to of pods)
          for (const port of to.ports)
            if (allowed(policies, { pod: from }, { pod: to }, port))
              actual.add(`${from.name}->${to.name}:${port}`);
      expect([...actual].sort()).toEqual([...expected].sort());
    });

    it('lets nodes and sentinels out to DNS only, and nothing in from outside', () => {
      for (const name of ['redis-session', 'redis-queue', 'redis-sentinel']) {
        expect(allowed(policies, pod(name), { dns: true }, 53, 'UDP'), name).toBe(true);
        for (const address of [...OUTSIDE, ...PRIVATE])
          for (const port of [443, 6379, 26379]) {
            expect(allowed(policies, pod(name), { outside: address }, port), `${name} -> ${address}`).toBe(
              false,
            );
            expect(allowed(policies, { outside: address }, pod(name), port), `${address} -> ${name}`).toBe(
              false,
            );
          }
      }
      expect(allowed(policies, pod('redis-cache'), { dns: true }, 53, 'UDP')).toBe(false);
    });

    it('gives each pod its own policy, the component’s adding to it', () => {
      for (const p of pods) {
        const selecting = policies
          .filter(
            (policy) =>
              policy.metadata.name !== 'default-deny' &&
              Object.entries(policy.spec.podSelector.matchLabels ?? {}).every(([k, v]) => p.labels[k] === v),
          )
          .map((policy) => policy.metadata.name as string);
        expect(selecting, p.name).toContain(p.name);
        for (const other of selecting) expect(other.startsWith(p.name), `${p.name}: ${other}`).toBe(true);
      }
    });

    it('closes a path when its policy is gone (the evaluator sees the component)', () => {
      const without = policies.filter((p) => p.metadata.name !== 'gateway-redis-sentinel');
      expect(allowed(policies, pod('gateway'), pod('redis-sentinel'), 26379)).toBe(true);
      expect(allowed(without, pod('gateway'), pod('redis-sentinel'), 26379)).toBe(false);
      const noReplication = policies.filter((p) => p.metadata.name !== 'redis-queue-group');
      expect(allowed(noReplication, pod('redis-queue'), pod('redis-queue'), 6379)).toBe(false);
    });
  });
});
