import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { type LoadedKubeConfig, loadKubeConfig } from '../../src/kube/config.js';
import { KubeApiServer, tempDir } from '../helpers/kube-api-server.js';

let server: KubeApiServer;
before(async () => {
  server = await KubeApiServer.create();
});
after(() => server.close());

const emptyHome = () => tempDir('doorwatch-home-');

/** Proves the loaded config really authenticates against the stand-in. */
async function canList(r: LoadedKubeConfig): Promise<void> {
  assert.ok(r.kubeConfig, 'reason' in r ? r.reason : '');
  const list = await r.kubeConfig.makeApiClient(CoreV1Api).listNamespace();
  assert.equal(list.kind, 'NamespaceList');
}

describe('kube config discovery', () => {
  it('in-cluster: service env + mounted token and CA; the token file is re-read (rotation), not copied', async () => {
    const sa = server.writeServiceAccount(join(tempDir(), 'sa'));
    const r = await loadKubeConfig({ env: sa.env, serviceAccountDir: sa.dir, homeDir: emptyHome() });
    assert.ok(r.kubeConfig);
    assert.equal(r.source, 'in-cluster');
    assert.equal(r.server, server.url);
    assert.equal(r.kubeConfig.getCurrentUser()?.authProvider?.config?.tokenFile, join(sa.dir, 'token'));
    await canList(r);
  });

  it('in-cluster wins over KUBECONFIG; without a mounted token it falls through to KUBECONFIG', async () => {
    const dir = tempDir();
    const sa = server.writeServiceAccount(join(dir, 'sa'));
    const kubeconfig = server.writeKubeconfig(dir);
    const env = { ...sa.env, KUBECONFIG: kubeconfig };
    const r1 = await loadKubeConfig({ env, serviceAccountDir: sa.dir, homeDir: emptyHome() });
    assert.equal(r1.kubeConfig && r1.source, 'in-cluster');
    const r2 = await loadKubeConfig({ env, serviceAccountDir: join(dir, 'nowhere'), homeDir: emptyHome() });
    assert.equal(r2.kubeConfig && r2.source, 'KUBECONFIG');
  });

  it('brackets an IPv6 service address', async () => {
    const sa = server.writeServiceAccount(join(tempDir(), 'sa'));
    const r = await loadKubeConfig({
      env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' },
      serviceAccountDir: sa.dir,
    });
    assert.equal(r.kubeConfig && r.server, 'https://[fd00::1]:443');
  });

  it('KUBECONFIG: a path list, missing files skipped, merged with the first definition winning', async () => {
    const dir = tempDir();
    const good = server.writeKubeconfig(dir, { fileName: 'a' });
    // Same names, wrong token: must not override the first file.
    const shadow = server.writeKubeconfig(dir, { fileName: 'b', token: 'wrong' });
    const r = await loadKubeConfig({ env: { KUBECONFIG: [join(dir, 'missing'), good, shadow].join(':') }, homeDir: emptyHome() });
    assert.equal(r.kubeConfig && r.source, 'KUBECONFIG');
    await canList(r);
  });

  it('KUBECONFIG naming no file is an answer with a reason (~/.kube/config is not consulted)', async () => {
    const home = emptyHome();
    server.writeKubeconfig(join(home, '.kube'), { fileName: 'config' });
    const r = await loadKubeConfig({ env: { KUBECONFIG: '/nonexistent/kubeconfig' }, homeDir: home });
    assert.equal(r.kubeConfig, undefined);
    assert.match('reason' in r ? r.reason : '', /KUBECONFIG \/nonexistent\/kubeconfig: no such readable file/);
  });

  it('~/.kube/config as the last resort', async () => {
    const home = emptyHome();
    server.writeKubeconfig(join(home, '.kube'), { fileName: 'config' });
    const r = await loadKubeConfig({ env: {}, homeDir: home });
    assert.equal(r.kubeConfig && r.source, 'home');
    await canList(r);
  });

  it('an explicit path beats everything', async () => {
    const dir = tempDir();
    const sa = server.writeServiceAccount(join(dir, 'sa'));
    const path = server.writeKubeconfig(dir, { fileName: 'explicit' });
    const r = await loadKubeConfig({ env: sa.env, serviceAccountDir: sa.dir, kubeconfigPath: path });
    assert.equal(r.kubeConfig && r.source, 'flag');
  });

  it('nothing found: undefined with every reason, never a silent localhost:8080', async () => {
    const r = await loadKubeConfig({ env: {}, homeDir: emptyHome() });
    assert.equal(r.kubeConfig, undefined);
    const reason = 'reason' in r ? r.reason : '';
    assert.match(reason, /not in a pod \(KUBERNETES_SERVICE_HOST unset\)/);
    assert.match(reason, /KUBECONFIG unset/);
    assert.match(reason, /no .*\.kube\/config/);
    const inPod = await loadKubeConfig({
      env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
      serviceAccountDir: join(tempDir(), 'none'),
      homeDir: emptyHome(),
    });
    assert.match('reason' in inPod ? inPod.reason : '', /no ServiceAccount token at .*automountServiceAccountToken/);
  });

  it('a broken or incomplete kubeconfig is a reason, not a throw', async () => {
    const dir = tempDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'broken'), 'clusters: [unclosed\n');
    const broken = await loadKubeConfig({ env: {}, kubeconfigPath: join(dir, 'broken') });
    assert.equal(broken.kubeConfig, undefined);
    writeFileSync(join(dir, 'nocontext'), 'apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n');
    const none = await loadKubeConfig({ env: {}, kubeconfigPath: join(dir, 'nocontext') });
    assert.match('reason' in none ? none.reason : '', /no current-context/);
  });
});
