/**
 * What deploy/k8s must hold that no Kubernetes schema says, as pure functions over parsed objects, so the
 * test can show each one failing on a broken copy: the pod policy (non-root, read-only root, no
 * capabilities, RuntimeDefault seccomp, requests and limits, tagged images, secrets only by reference),
 * the rollout policy of a Deployment (probes, zero-unavailable rolling update, preStop, grace), and a
 * NetworkPolicy evaluator that answers "may this pod reach that one on this port".
 */

// Parsed YAML, checked field by field below.
export type K8sObject = Record<string, any>;

export interface Labelled {
  labels: Record<string, string>;
}

/** The kinds that carry a pod template, and where it is. */
export function podTemplateOf(object: K8sObject): K8sObject | undefined {
  if (['Deployment', 'StatefulSet', 'Job'].includes(object.kind)) return object.spec?.template;
  return undefined;
}

/**
 * Variables whose value is a credential, whatever their schema says: URLs that carry a user and password,
 * keys and tokens. `secretNames` adds the ones the services' config schemas mark `x-secret`.
 */
export function isSecretVariable(name: string, secretNames: ReadonlySet<string>): boolean {
  return (
    secretNames.has(name) ||
    /^(DATABASE_URL|REDIS_[A-Z]+_URL|SMTP_URL|IDENTITY_PRIVATE_KEY)$/.test(name) ||
    /(PASSWORD|SECRET|TOKEN)$/.test(name)
  );
}

/** A value that looks like a credential: a URL with a password in it, or a PEM private key. */
export function looksSecret(value: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i.test(value) || /PRIVATE KEY/.test(value);
}

const quantity = (value: unknown) => typeof value === 'string' || typeof value === 'number';

/**
 * Everything wrong with one pod template against the policy; empty when it holds. `secretNames` are the
 * variables the config schemas mark as secrets.
 */
export function podPolicyProblems(
  owner: string,
  template: K8sObject,
  secretNames: ReadonlySet<string> = new Set(),
): string[] {
  const problems: string[] = [];
  const spec = template?.spec ?? {};
  const pod = spec.securityContext ?? {};
  if (spec.automountServiceAccountToken !== false)
    problems.push(`${owner}: automountServiceAccountToken is not false`);
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) problems.push(`${owner}: shares a host namespace`);
  if (pod.runAsNonRoot !== true) problems.push(`${owner}: pod securityContext.runAsNonRoot is not true`);
  if (pod.seccompProfile?.type !== 'RuntimeDefault')
    problems.push(`${owner}: pod seccompProfile is not RuntimeDefault`);
  for (const volume of spec.volumes ?? [])
    if (volume.hostPath) problems.push(`${owner}: volume ${volume.name} is a hostPath`);
  const containers: K8sObject[] = [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
  if (containers.length === 0) problems.push(`${owner}: no containers`);
  for (const c of containers) {
    const where = `${owner} container ${c.name}`;
    const sc = c.securityContext ?? {};
    if (sc.runAsNonRoot !== true) problems.push(`${where}: runAsNonRoot is not true`);
    if ((sc.runAsUser ?? pod.runAsUser) === 0 || (sc.runAsUser ?? pod.runAsUser) === undefined)
      problems.push(`${where}: runs without a non-zero runAsUser`);
    if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem is not true`);
    if (sc.allowPrivilegeEscalation !== false)
      problems.push(`${where}: allowPrivilegeEscalation is not false`);
    if (sc.privileged) problems.push(`${where}: privileged`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL'))
      problems.push(`${where}: capabilities not dropped (ALL)`);
    if ((sc.capabilities?.add ?? []).length > 0) problems.push(`${where}: adds capabilities`);
    if ((sc.seccompProfile?.type ?? pod.seccompProfile?.type) !== 'RuntimeDefault')
      problems.push(`${where}: seccompProfile is not RuntimeDefault`);
    for (const kind of ['requests', 'limits'] as const)
      for (const resource of ['cpu', 'memory'])
        if (!quantity(c.resources?.[kind]?.[resource])) problems.push(`${where}: no ${resource} ${kind}`);
    const image = String(c.image ?? '');
    const tag = image.includes('@') ? 'digest' : /:([^/:]+)$/.exec(image)?.[1];
    if (!tag || tag === 'latest') problems.push(`${where}: image ${image} has no pinned tag`);
    for (const e of c.env ?? []) {
      if (e.value === undefined) continue;
      if (isSecretVariable(e.name, secretNames) || looksSecret(String(e.value)))
        problems.push(`${where}: ${e.name} is given a literal value; a secret comes from a Secret`);
    }
    for (const from of c.envFrom ?? [])
      if (from.secretRef === undefined && from.configMapRef === undefined)
        problems.push(`${where}: envFrom without a reference`);
    // A read-only root needs somewhere to write temporary files.
    if (!(c.volumeMounts ?? []).some((m: K8sObject) => m.mountPath === '/tmp' || m.mountPath === '/data'))
      problems.push(`${where}: no writable volume (/tmp or /data) under a read-only root`);
  }
  return problems;
}

/** The env value of a container's variable, as written (not from a reference). */
export function literalEnv(container: K8sObject, name: string): string | undefined {
  const entry = (container.env ?? []).find((e: K8sObject) => e.name === name);
  return entry?.value === undefined ? undefined : String(entry.value);
}

/** Everything wrong with a Deployment's rollout: probes, rolling update, preStop, grace period, replicas. */
export function rolloutProblems(deployment: K8sObject): string[] {
  const name = `Deployment ${deployment.metadata?.name}`;
  const problems: string[] = [];
  const spec = deployment.spec ?? {};
  if (spec.replicas !== undefined) problems.push(`${name}: sets replicas, which its autoscaler owns`);
  if (spec.strategy?.type !== 'RollingUpdate') problems.push(`${name}: strategy is not RollingUpdate`);
  if (spec.strategy?.rollingUpdate?.maxUnavailable !== 0) problems.push(`${name}: maxUnavailable is not 0`);
  if (spec.strategy?.rollingUpdate?.maxSurge !== 1) problems.push(`${name}: maxSurge is not 1`);
  const pod = spec.template?.spec ?? {};
  for (const c of pod.containers ?? []) {
    const where = `${name} container ${c.name}`;
    const ports = new Set<unknown>((c.ports ?? []).flatMap((p: K8sObject) => [p.name, p.containerPort]));
    for (const [probe, path] of [
      ['livenessProbe', '/health/live'],
      ['readinessProbe', '/health/ready'],
    ] as const) {
      const get = c[probe]?.httpGet;
      if (get?.path !== path) problems.push(`${where}: ${probe} is not GET ${path}`);
      else if (!ports.has(get.port)) problems.push(`${where}: ${probe} asks port ${get.port}, not its own`);
    }
    const stop = c.lifecycle?.preStop;
    const sleepS =
      stop?.sleep?.seconds ?? (stop?.exec?.command?.[0] === 'sleep' ? Number(stop.exec.command[1]) : 0);
    if (!(sleepS > 0)) problems.push(`${where}: no preStop pause before SIGTERM`);
    const graceMs = Number(literalEnv(c, 'SHUTDOWN_GRACE_MS') ?? 10_000);
    const period = pod.terminationGracePeriodSeconds ?? 30;
    if (!(period > sleepS + graceMs / 1000))
      problems.push(
        `${name}: terminationGracePeriodSeconds ${period} does not outlast preStop ${sleepS} s + SHUTDOWN_GRACE_MS ${graceMs}`,
      );
  }
  return problems;
}

// ---- NetworkPolicy ------------------------------------------------------------------------------------

const matches = (selector: K8sObject | undefined, labels: Record<string, string>) =>
  Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v) &&
  (selector?.matchExpressions ?? []).length === 0;

/** A peer of a connection: a pod of the namespace, kube-dns, or an address outside the cluster. */
export type Peer = { pod: Labelled } | { dns: true } | { outside: string };

function peerMatches(rulePeer: K8sObject, peer: Peer): boolean {
  if ('outside' in peer) {
    const block = rulePeer.ipBlock;
    if (!block) return false;
    const v6 = peer.outside.includes(':');
    if (block.cidr !== (v6 ? '::/0' : '0.0.0.0/0')) return false;
    return !(block.except ?? []).some((except: string) => inCidr(peer.outside, except));
  }
  if ('dns' in peer)
    return (
      rulePeer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'kube-system' &&
      rulePeer.podSelector?.matchLabels?.['k8s-app'] === 'kube-dns'
    );
  // A pod of this namespace: a podSelector alone (a namespaceSelector names other namespaces).
  return rulePeer.namespaceSelector === undefined && rulePeer.podSelector !== undefined
    ? matches(rulePeer.podSelector, peer.pod.labels)
    : false;
}

/** Only what the manifests use: IPv4 CIDRs and the two private IPv6 prefixes. */
function inCidr(address: string, cidr: string): boolean {
  const [base = '', bitsText = '0'] = cidr.split('/');
  const bits = Number(bitsText);
  if (address.includes(':') !== base.includes(':')) return false;
  if (base.includes(':')) {
    const first = (a: string) => Number.parseInt(a.split(':')[0] || '0', 16);
    const mask = bits >= 16 ? 0xffff : (0xffff << (16 - bits)) & 0xffff;
    return (first(address) & mask) === (first(base) & mask);
  }
  const toInt = (a: string) => a.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return (toInt(address) & mask) >>> 0 === (toInt(base) & mask) >>> 0;
}

function portMatches(rule: K8sObject, port: number, protocol: string): boolean {
  if (!rule.ports || rule.ports.length === 0) return true;
  return rule.ports.some(
    (p: K8sObject) => (p.protocol ?? 'TCP') === protocol && (p.port === undefined || p.port === port),
  );
}

/** Whether `policies` let `from` open a connection to `to` on `port` (both ends must allow it). */
export function allowed(
  policies: K8sObject[],
  from: Peer,
  to: Peer,
  port: number,
  protocol: 'TCP' | 'UDP' = 'TCP',
): boolean {
  const side = (pod: Peer, direction: 'Ingress' | 'Egress', other: Peer) => {
    if (!('pod' in pod)) return true; // only pods of the namespace have policies here
    const selecting = policies.filter(
      (p) => matches(p.spec.podSelector, pod.pod.labels) && (p.spec.policyTypes ?? []).includes(direction),
    );
    if (selecting.length === 0) return true; // not isolated in this direction
    const key = direction === 'Ingress' ? 'ingress' : 'egress';
    const peersKey = direction === 'Ingress' ? 'from' : 'to';
    return selecting.some((p) =>
      (p.spec[key] ?? []).some(
        (rule: K8sObject) =>
          portMatches(rule, port, protocol) &&
          (rule[peersKey] === undefined ||
            rule[peersKey].some((peer: K8sObject) => peerMatches(peer, other))),
      ),
    );
  };
  return side(from, 'Egress', to) && side(to, 'Ingress', from);
}
