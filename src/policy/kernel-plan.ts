import { PeerAction, POLICY_LAYOUT, PolicyFlags, PolicyMode } from '../bpf/abi.js';
import type { Cidr } from './cidr.js';
import type { PolicySpec } from './spec.js';

/**
 * A policy spec as the kernel holds it: struct dw_policy bytes and the
 * slot's peer trie entries (bpf/doorwatch.h). Pure.
 */

const MODE = { events: PolicyMode.EVENTS, summary: PolicyMode.SUMMARY, off: PolicyMode.OFF } as const;

export interface PeerEntry {
  addr: Uint8Array;
  prefix: number;
  action: number;
  /** "<prefix>/<hex addr>": identity within a slot, for diffs. */
  id: string;
}

export function encodePolicy(spec: PolicySpec): Buffer {
  const b = Buffer.alloc(POLICY_LAYOUT.size);
  let flags = 0;
  if (spec.failedAccepts) flags |= PolicyFlags.FAILED_ACCEPTS;
  if (spec.peers.include.length) flags |= PolicyFlags.PEER_INCLUDE;
  if (spec.peers.include.length || spec.peers.exclude.length) flags |= PolicyFlags.PEER_RULES;
  b.writeUInt8(MODE[spec.mode], POLICY_LAYOUT.mode);
  b.writeUInt8(flags, POLICY_LAYOUT.flags);
  b.writeUInt8(spec.ports.include.length, POLICY_LAYOUT.n_include);
  b.writeUInt8(spec.ports.exclude.length, POLICY_LAYOUT.n_exclude);
  spec.ports.include.forEach((r, i) => {
    b.writeUInt16LE(r.lo, POLICY_LAYOUT.include + 4 * i);
    b.writeUInt16LE(r.hi, POLICY_LAYOUT.include + 4 * i + 2);
  });
  spec.ports.exclude.forEach((r, i) => {
    b.writeUInt16LE(r.lo, POLICY_LAYOUT.exclude + 4 * i);
    b.writeUInt16LE(r.hi, POLICY_LAYOUT.exclude + 4 * i + 2);
  });
  return b;
}

export function peerEntries(spec: PolicySpec): PeerEntry[] {
  const entry = (c: Cidr, action: number): PeerEntry => ({
    addr: c.addr,
    prefix: c.prefix,
    action,
    id: `${c.prefix}/${Buffer.from(c.addr).toString('hex')}`,
  });
  return [
    ...spec.peers.include.map((c) => entry(c, PeerAction.INCLUDE)),
    ...spec.peers.exclude.map((c) => entry(c, PeerAction.EXCLUDE)),
  ];
}
