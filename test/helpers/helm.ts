import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Certificate } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate';
import { Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { PriorityClass } from 'kubernetes-models/scheduling.k8s.io/v1/PriorityClass';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parseAllDocuments } from 'yaml';

/**
 * The Helm chart rendered without helm: test/helm-render (Go text/template +
 * sprig, built offline from Debian's packages) stands in for `helm template`
 * and `helm lint`, which cannot run here. The renderer is built once per
 * process, into build/helm-render/ (git-ignored), and rebuilt when its source
 * is newer. No `go` is a failure with the fix, never a skip.
 */

export { REPO_ROOT as ROOT } from './fixtures.js';

import { REPO_ROOT as ROOT } from './fixtures.js';
export const CHART = join(ROOT, 'helm/doorwatch');
const SRC = join(ROOT, 'test/helm-render');
const BIN = join(ROOT, 'build/helm-render/helm-render');

/** GOPATH mode over Debian's /usr/share/gocode: no module proxy, no network. */
export const GO_ENV = {
  GO111MODULE: 'off',
  GOPATH: '/usr/share/gocode',
  GOFLAGS: '',
  GOPROXY: 'off',
  GOCACHE: join(ROOT, 'build/go-cache'),
};

let built = false;

export function buildRenderer(): string {
  if (built) return BIN;
  const bin = statSync(BIN, { throwIfNoEntry: false });
  if (!bin || bin.mtimeMs < statSync(join(SRC, 'main.go')).mtimeMs) {
    mkdirSync(join(ROOT, 'build/helm-render'), { recursive: true });
    // Built under a temporary name and renamed into place: test files run in parallel, and a binary being
    // executed must never be overwritten in place (ETXTBSY).
    const tmp = `${BIN}.${process.pid}.tmp`;
    const r = spawnSync('go', ['build', '-o', tmp, '.'], {
      cwd: SRC,
      env: { ...process.env, ...GO_ENV },
      encoding: 'utf8',
      timeout: 300_000,
    });
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(
        'go is not installed: the chart tests render helm/doorwatch with test/helm-render (Go + sprig). ' +
          'Run `bash scripts/setup.sh --test` (installs golang-go, golang-github-masterminds-sprig-dev, golang-k8s-sigs-yaml-dev, ' +
          'golang-github-xeipuuv-gojsonschema-dev)',
      );
    }
    if (r.status !== 0) throw new Error(`building test/helm-render failed (exit ${r.status}):\n${r.stderr}${r.error ?? ''}`);
    renameSync(tmp, BIN);
  }
  built = true;
  return BIN;
}

/** APIs a cluster may serve besides the built-in ones (RenderOptions.apiVersions). */
export const CERT_MANAGER_API = 'cert-manager.io/v1';
export const PROMETHEUS_API = 'monitoring.coreos.com/v1';

/** A Kubernetes object as rendered (loosely typed: tests look into it). */
// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are arbitrary YAML
export type K8sObject = Record<string, any>;

export interface RenderOptions {
  /** Values files' contents, applied in order (like repeated -f). */
  values?: unknown[];
  /** helm --set expressions. */
  set?: string[];
  /** Extra .Capabilities.APIVersions (cert-manager.io/v1, monitoring.coreos.com/v1). */
  apiVersions?: string[];
  kubeVersion?: string;
  namespace?: string;
  releaseName?: string;
  includeCrds?: boolean;
  notes?: boolean;
}

export interface RenderResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function renderRaw(o: RenderOptions = {}): RenderResult {
  const bin = buildRenderer();
  const dir = mkdtempSync(join(tmpdir(), 'dw-helm-'));
  try {
    const args = [CHART, '--namespace', o.namespace ?? 'doorwatch', '--release-name', o.releaseName ?? 'doorwatch'];
    (o.values ?? []).forEach((v, i) => {
      const f = join(dir, `values-${i}.json`);
      writeFileSync(f, JSON.stringify(v));
      args.push('-f', f);
    });
    for (const s of o.set ?? []) args.push('--set', s);
    for (const a of o.apiVersions ?? []) args.push('--api-versions', a);
    if (o.kubeVersion) args.push('--kube-version', o.kubeVersion);
    if (o.includeCrds) args.push('--include-crds');
    if (o.notes) args.push('--notes');
    const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 60_000 });
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every document of a multi-document YAML stream, parsed as kubectl does (YAML 1.1). */
export function parseManifests(text: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text, { version: '1.1' })) {
    if (doc.errors.length) throw new Error(`YAML error: ${doc.errors[0]!.message}`);
    const v = doc.toJS();
    if (v !== null && v !== undefined) out.push(v as K8sObject);
  }
  return out;
}

export interface Rendered {
  objects: K8sObject[];
  text: string;
  notes: string;
}

/** Renders and fails with the renderer's message when it does not succeed. */
export function render(o: RenderOptions = {}): Rendered {
  const r = renderRaw({ includeCrds: true, ...o, notes: true });
  if (r.status !== 0) throw new Error(`rendering failed (exit ${r.status}):\n${r.stderr}`);
  const at = r.stdout.lastIndexOf('\nNOTES:\n');
  const text = at >= 0 ? r.stdout.slice(0, at) : r.stdout;
  return { objects: parseManifests(text), text, notes: at >= 0 ? r.stdout.slice(at + 8) : '' };
}

export function find(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const hit = objects.find((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  if (!hit)
    throw new Error(
      `no ${kind}${name ? ` ${name}` : ''} among: ${objects.map((o) => `${o.kind}/${o.metadata?.name}`).join(', ')}`,
    );
  return hit;
}

export function kinds(objects: K8sObject[]): string[] {
  return objects.map((o) => `${o.kind}/${o.metadata?.name}`);
}

/** Files under a directory, relative, sorted. */
export function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
    .sort();
}

// --- Kubernetes schema validation ---------------------------------------------------------------------------

/** What every kubernetes-models class offers: a constructor-free validate() run against `this`. */
interface ModelClass {
  prototype: { validate(): void };
}

/**
 * apiVersion/kind -> the kubernetes-models class holding its OpenAPI schema
 * (Kubernetes 1.32's for the core kinds; cert-manager's and the Prometheus
 * Operator's CRD schemas from their @kubernetes-models packages).
 */
export const MODELS: Record<string, ModelClass> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Secret': Secret,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/DaemonSet': DaemonSet,
  'apps/v1/Deployment': Deployment,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'scheduling.k8s.io/v1/PriorityClass': PriorityClass,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
  'cert-manager.io/v1/Certificate': Certificate,
  'cert-manager.io/v1/Issuer': Issuer,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

interface Tracked {
  keys: string[];
  read: Set<string>;
}

/**
 * A deep copy of `v` whose objects record which of their keys the validator
 * reads. The compiled schema validators read every property their schema
 * defines, so a key never read is one the schema does not know: a typo
 * (readOnlyRootFileSystem) that the API server would refuse under strict
 * field validation (kubectl's default) or silently drop.
 */
function track(v: unknown, path: string, seen: Map<string, Tracked>): unknown {
  if (Array.isArray(v)) return v.map((x, i) => track(x, `${path}[${i}]`, seen));
  if (v !== null && typeof v === 'object') {
    const target: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) target[k] = track(x, path ? `${path}.${k}` : k, seen);
    const read = new Set<string>();
    seen.set(path, { keys: Object.keys(target), read });
    return new Proxy(target, {
      get(t, k, r) {
        if (typeof k === 'string') read.add(k);
        return Reflect.get(t, k, r);
      },
    });
  }
  return v;
}

/** Problems of one object against its Kubernetes schema: type/required/enum errors, and unknown fields. */
export function schemaProblems(obj: K8sObject): string[] {
  const id = `${obj.apiVersion}/${obj.kind}`;
  const model = MODELS[id];
  const name = `${obj.kind}/${obj.metadata?.name}`;
  if (!model) return [`${name}: no schema for ${id} (add it to MODELS in test/helpers/helm.ts)`];
  const seen = new Map<string, Tracked>();
  const proxied = track(obj, '', seen);
  const problems: string[] = [];
  try {
    model.prototype.validate.call(proxied);
  } catch (e) {
    problems.push(`${name}: ${(e as Error).message}`);
  }
  for (const [path, t] of seen) {
    // A CRD's openAPIV3Schema is JSON Schema: the API server checks it (structural schema rules); the models'
    // JSONSchemaProps does not list x-kubernetes-* keys.
    if (/\.openAPIV3Schema(\.|$)/.test(path)) continue;
    for (const k of t.keys) {
      // kubernetes-models strips every schema key named "description" when it generates its validators, and
      // with it the one real field of that name (PriorityClass.description).
      if (k === 'description') continue;
      if (!t.read.has(k)) problems.push(`${name}: unknown field ${path ? `${path}.${k}` : k}`);
    }
  }
  return problems;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

// biome-ignore lint/suspicious/noExplicitAny: pod specs are walked loosely
type Any = any;

function podSpecOf(o: K8sObject): Any | undefined {
  return o.kind === 'DaemonSet' || o.kind === 'Deployment' ? o.spec?.template?.spec : undefined;
}

/**
 * Rules the API server enforces in code rather than in the OpenAPI schema
 * (pkg/apis/*\/validation), for what this chart renders: names, label values,
 * selectors matching templates, references between volumes, mounts and named
 * ports, and the privileged/allowPrivilegeEscalation conflict.
 */
export function apiServerProblems(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const o of objects) {
    const name = `${o.kind}/${o.metadata?.name}`;
    const key = `${o.apiVersion}/${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
    if (seen.has(key)) problems.push(`${name}: rendered twice`);
    seen.add(key);
    const n = String(o.metadata?.name ?? '');
    const nameOk = ['Service', 'Namespace'].includes(o.kind)
      ? DNS1123_LABEL.test(n) && n.length <= 63
      : DNS1123_SUBDOMAIN.test(n) && n.length <= 253;
    if (!nameOk) problems.push(`${name}: invalid name`);
    const labelSets = [o.metadata?.labels, o.spec?.template?.metadata?.labels, o.spec?.selector?.matchLabels];
    for (const labels of labelSets) {
      for (const [k, v] of Object.entries((labels ?? {}) as Record<string, unknown>)) {
        if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v))
          problems.push(`${name}: label ${k}=${String(v)} is not a valid label value`);
      }
    }
    if (o.kind === 'DaemonSet' || o.kind === 'Deployment') {
      const sel = o.spec.selector.matchLabels as Record<string, string>;
      const tpl = o.spec.template.metadata.labels as Record<string, string>;
      for (const [k, v] of Object.entries(sel))
        if (tpl[k] !== v) problems.push(`${name}: selector ${k}=${v} does not match the template`);
    }
    const spec = podSpecOf(o);
    if (!spec) continue;
    const volumes = new Set<string>();
    for (const v of spec.volumes ?? []) {
      if (volumes.has(v.name)) problems.push(`${name}: volume ${v.name} twice`);
      volumes.add(v.name);
    }
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      const ports = new Set<string>();
      for (const p of c.ports ?? []) {
        if (p.name !== undefined) {
          if (p.name.length > 15 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(p.name))
            problems.push(`${name}: port name ${p.name} is invalid`);
          ports.add(p.name);
        }
      }
      for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
        const port = c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port;
        if (typeof port === 'string' && !ports.has(port)) problems.push(`${name}: ${c.name}.${probe} uses unknown port ${port}`);
      }
      const mountPaths = new Set<string>();
      for (const m of c.volumeMounts ?? []) {
        if (!volumes.has(m.name)) problems.push(`${name}: ${c.name} mounts unknown volume ${m.name}`);
        if (mountPaths.has(m.mountPath)) problems.push(`${name}: ${c.name} mounts ${m.mountPath} twice`);
        mountPaths.add(m.mountPath);
        if (m.recursiveReadOnly && m.recursiveReadOnly !== 'Disabled' && m.readOnly !== true) {
          problems.push(`${name}: ${c.name} ${m.name}: recursiveReadOnly needs readOnly`);
        }
      }
      const sc = c.securityContext ?? {};
      const addsSysAdmin = (sc.capabilities?.add ?? []).includes('SYS_ADMIN');
      if (sc.allowPrivilegeEscalation === false && (sc.privileged === true || addsSysAdmin)) {
        problems.push(
          `${name}: ${c.name}: cannot set allowPrivilegeEscalation to false and privileged (or CAP_SYS_ADMIN) to true`,
        );
      }
      if (sc.appArmorProfile && sc.privileged) problems.push(`${name}: ${c.name}: appArmorProfile on a privileged container`);
    }
  }
  return problems;
}

/** Every problem of a rendered release: each object against its schema, then the API server's own rules. */
export function validateAll(objects: K8sObject[]): string[] {
  return [...objects.flatMap(schemaProblems), ...apiServerProblems(objects)];
}
