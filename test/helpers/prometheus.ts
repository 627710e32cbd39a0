import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './wait.js';

/**
 * Debian's Prometheus 2.42 (package `prometheus`, installed by scripts/setup.sh): promtool to check
 * expositions and rules, and the server itself for the dashboard test. Missing binaries are a failure
 * with the fix, never a skip.
 */

function need(bin: string): string {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error(`${bin} is not installed: run \`bash scripts/setup.sh\` (installs Debian's prometheus package)`);
  }
  if (r.error) throw r.error;
  return bin;
}

export interface ToolResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** promtool with `args`, `input` on stdin (bounded to 60 s). */
export function promtool(args: string[], input?: string): ToolResult {
  const r = spawnSync(need('promtool'), args, { encoding: 'utf8', input, timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `promtool check metrics` on an exposition: the problems it prints (lint included), or [] when clean. */
export function checkMetrics(exposition: string): string[] {
  const r = promtool(['check', 'metrics'], exposition);
  const out = `${r.stdout}${r.stderr}`.trim();
  return r.status === 0 && out === '' ? [] : [`exit ${r.status}: ${out}`];
}

export interface ScrapeTarget {
  job: string;
  target: string;
  labels?: Record<string, string>;
}

export interface RunningPrometheus {
  url: string;
  /** GET /api/v1/<path> with query parameters; the parsed `data`, or an Error with Prometheus' message. */
  api<T = unknown>(path: string, params?: Record<string, string>): Promise<T>;
  stop(): Promise<void>;
}

/** A real Prometheus scraping `targets` every second, its TSDB in a temporary directory removed on stop(). */
export async function startPrometheus(targets: ScrapeTarget[]): Promise<RunningPrometheus> {
  const bin = need('prometheus');
  const dir = mkdtempSync(join(tmpdir(), 'dw-prometheus-'));
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    scrape_configs: targets.map((t) => ({
      job_name: t.job,
      static_configs: [{ targets: [t.target], labels: t.labels ?? {} }],
    })),
  };
  writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config));
  const port = await freePort();
  const proc: ChildProcess = spawn(
    bin,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-8000);
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited ${proc.exitCode}: ${stderr}`);
    }
    try {
      if ((await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) })).ok) break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready in 30s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    async api<T>(path: string, params: Record<string, string> = {}): Promise<T> {
      const res = await fetch(`${url}/api/v1/${path}?${new URLSearchParams(params)}`, { signal: AbortSignal.timeout(10_000) });
      const body = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
      if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.errorType}: ${body.error}`);
      return body.data;
    },
    stop,
  };
}
