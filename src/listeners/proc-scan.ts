import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { AF_INET, AF_INET6, AF_UNIX, sockTypeName } from '../capture/address.js';
import { readProcCgroupPath } from '../enrich/cgroup/proc.js';

/**
 * Every listening TCP (v4, v6) and unix socket on the node, from /proc: the
 * sockets of each network namespace (/proc/<pid>/net/{tcp,tcp6,unix}, read
 * once per namespace through one of its processes) joined to the processes
 * holding them (/proc/<pid>/fd -> socket:[inode]). Reading another user's
 * /proc/<pid>/fd needs CAP_SYS_PTRACE: the agent, which has not, scans with
 * the kernel iterator instead (iter-scan.ts); this serves `doorwatch
 * listeners` (root) and kernels where the iterator does not load.
 */

export interface ScannedProcess {
  pid: number;
  /** The thread the fd was found through (the iterator); the pid for /proc. */
  tid?: number;
  ppid: number;
  uid: number;
  gid: number;
  comm: string;
  ns: { mnt: number; pid: number; net: number; uts: number };
  cgroupId: bigint;
  cgroupV1Id?: bigint;
}

export interface ScannedListener {
  family: number;
  /** STREAM or SEQPACKET (unix); STREAM for TCP. */
  sockType: string;
  protocol: number;
  localIp: string;
  localPort: number;
  unixPath: string;
  inode: bigint;
  /** Connections waiting to be accepted (rx_queue of a LISTEN socket). */
  queued: number;
  /** The accept queue's bound: known to the kernel iterator only (/proc does not show it). */
  maxBacklog?: number;
  netNs: number;
  /** The holder with the lowest pid (a forking server's parent), and its fd; undefined when no process holds it. */
  holder?: { proc: ScannedProcess; fd: number };
  /** How many processes hold the socket (forked workers share it). */
  holders: number;
}

export interface ScanResult {
  listeners: ScannedListener[];
  /** Processes that vanished or could not be read mid-scan (normal churn; counted, not fatal). */
  unreadable: number;
}

const IPPROTO_TCP = 6;
const TCP_LISTEN = '0A';
const SO_ACCEPTCON = 0x10000;
/** "0100007F" (a __be32 printed as a host-order u32) -> 127.0.0.1. Little-endian hosts. */
export function procIPv4(hex: string): string {
  const n = Number.parseInt(hex, 16);
  return `${n & 0xff}.${(n >>> 8) & 0xff}.${(n >>> 16) & 0xff}.${n >>> 24}`;
}

/** 32 hex digits, four host-order u32 words -> RFC 5952 text. */
export function procIPv6(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const n = Number.parseInt(hex.slice(w * 8, w * 8 + 8), 16);
    bytes.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // ::ffff:a.b.c.d for mapped addresses, as formatIPv6 writes them.
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff')
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

type Socket = Omit<ScannedListener, 'holder' | 'holders' | 'netNs'>;

/** LISTEN lines of /proc/net/tcp or tcp6. */
export function parseProcTcp(text: string, family: number): Socket[] {
  const out: Socket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== TCP_LISTEN) continue;
    const [addr, port] = f[1]!.split(':') as [string, string];
    out.push({
      family,
      sockType: 'STREAM',
      protocol: IPPROTO_TCP,
      localIp: family === AF_INET ? procIPv4(addr) : procIPv6(addr),
      localPort: Number.parseInt(port, 16),
      unixPath: '',
      inode: BigInt(f[9]!),
      queued: Number.parseInt(f[4]!.split(':')[1] ?? '0', 16),
    });
  }
  return out;
}

/** Listening (__SO_ACCEPTCON) lines of /proc/net/unix. */
export function parseProcUnix(text: string): Socket[] {
  const out: Socket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 7) continue;
    if (!(Number.parseInt(f[3]!, 16) & SO_ACCEPTCON)) continue;
    const type = Number.parseInt(f[4]!, 16);
    out.push({
      family: AF_UNIX,
      sockType: sockTypeName(type),
      protocol: 0,
      localIp: '',
      localPort: 0,
      // The path is the rest of the line (it may hold spaces); abstract names start with '@'.
      unixPath: f.length > 7 ? line.trim().split(/\s+/).slice(7).join(' ') : '',
      inode: BigInt(f[6]!),
      queued: 0,
    });
  }
  return out;
}

const nsInode = (link: string): number => Number(/\[(\d+)\]/.exec(link)?.[1] ?? 0);

async function readProcess(root: string, pid: number, cgroupRoot: string): Promise<ScannedProcess> {
  const dir = `${root}/${pid}`;
  const [stat_, status, mnt, pidNs, net, uts] = await Promise.all([
    readFile(`${dir}/stat`, 'utf8'),
    readFile(`${dir}/status`, 'utf8'),
    readlink(`${dir}/ns/mnt`),
    readlink(`${dir}/ns/pid`),
    readlink(`${dir}/ns/net`),
    readlink(`${dir}/ns/uts`),
  ]);
  // comm may hold spaces and parentheses: it ends at the last ')'.
  const close = stat_.lastIndexOf(')');
  const comm = stat_.slice(stat_.indexOf('(') + 1, close);
  const ppid = Number(stat_.slice(close + 2).split(' ')[1]);
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  const gid = Number(/^Gid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  // The cgroup v2 id is the cgroup directory's inode, as bpf_get_current_cgroup_id() reports it.
  let cgroupId = 0n;
  const cg = readProcCgroupPath(pid, root);
  if (cg?.version === 2) cgroupId = (await stat(`${cgroupRoot}${cg.path}`, { bigint: true }).catch(() => undefined))?.ino ?? 0n;
  return {
    pid,
    ppid,
    uid,
    gid,
    comm,
    ns: { mnt: nsInode(mnt), pid: nsInode(pidNs), net: nsInode(net), uts: nsInode(uts) },
    cgroupId,
  };
}

export interface ScanOptions {
  procRoot?: string;
  /** Where the cgroup v2 hierarchy is mounted. */
  cgroupRoot?: string;
}

export async function scanListeners(o: ScanOptions = {}): Promise<ScanResult> {
  const root = o.procRoot ?? '/proc';
  const cgroupRoot = o.cgroupRoot ?? '/sys/fs/cgroup';
  const pids = (await readdir(root)).filter((n) => /^\d+$/.test(n)).map(Number);
  let unreadable = 0;
  /** socket inode -> its holders (pid, fd). */
  const holders = new Map<bigint, { pid: number; fd: number }[]>();
  /** netns inode -> a pid in it, to read that namespace's socket tables. */
  const nsPid = new Map<number, number>();
  const procs = new Map<number, ScannedProcess>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = await readdir(`${root}/${pid}/fd`);
    } catch {
      unreadable++; // exited, or a kernel thread's empty table
      continue;
    }
    let holds = false;
    for (const fd of fds) {
      const link = await readlink(`${root}/${pid}/fd/${fd}`).catch(() => '');
      if (!link.startsWith('socket:[')) continue;
      const ino = BigInt(link.slice(8, -1));
      const h = holders.get(ino);
      if (h) h.push({ pid, fd: Number(fd) });
      else holders.set(ino, [{ pid, fd: Number(fd) }]);
      holds = true;
    }
    if (!holds) continue;
    try {
      const p = await readProcess(root, pid, cgroupRoot);
      procs.set(pid, p);
      if (!nsPid.has(p.ns.net)) nsPid.set(p.ns.net, pid);
    } catch {
      unreadable++;
    }
  }
  const listeners: ScannedListener[] = [];
  for (const [netNs, pid] of nsPid) {
    const tables: [string, (t: string) => Socket[]][] = [
      ['tcp', (t) => parseProcTcp(t, AF_INET)],
      ['tcp6', (t) => parseProcTcp(t, AF_INET6)],
      ['unix', parseProcUnix],
    ];
    for (const [name, parse] of tables) {
      let text: string;
      try {
        text = await readFile(`${root}/${pid}/net/${name}`, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && name === 'tcp6') continue; // IPv6 disabled
        unreadable++;
        continue;
      }
      for (const s of parse(text)) {
        const held = (holders.get(s.inode) ?? []).filter((h) => procs.has(h.pid)).sort((a, b) => a.pid - b.pid);
        const first = held[0];
        listeners.push({ ...s, netNs, holders: held.length, holder: first && { proc: procs.get(first.pid)!, fd: first.fd } });
      }
    }
  }
  return { listeners, unreadable };
}
