import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatLine, formatRecord } from '../../src/formats/format.js';
import { JsonWriter } from '../../src/formats/native-json.js';
import {
  eventToTraceeLine,
  goString,
  lossToTraceeLine,
  TRACEE_LOSS_EVENT,
  TRACEE_SUMMARY_EVENT,
  traceeFamilyName,
  writeEventTracee,
} from '../../src/formats/tracee.js';
import { AddressFamily, Source } from '../../src/gen/doorwatch/v1/event.js';
import { encodeLines, jsonlLine } from '../../src/sinks/jsonl.js';
import { sampleEvent, sampleHostEvent, sampleLoss, sampleSummary, sampleUnixEvent } from '../helpers/sample-events.js';
import { corpus } from '../helpers/schemas/corpus.js';
import { loadTraceeSource, validateTracee } from '../helpers/schemas/tracee.js';

// Golden-free: every expectation comes from Tracee v0.24.1's own source (test/helpers/schemas/tracee-v0.24.1,
// byte-for-byte excerpts) or from the Doorwatch event fed in.
const src = loadTraceeSource();
const ARCH = process.arch === 'arm64' ? 'arm64' : 'amd64';

type Line = Record<string, unknown> & { args: { name: string; type: string; value: unknown }[] };
const parse = (l: string) => JSON.parse(l) as Line;
/** An integer field's exact digits (JSON.parse rounds past 2^53). */
const digits = (l: string, key: string) => new RegExp(`"${key}":(-?\\d+)`).exec(l)?.[1];

describe('the Tracee source excerpts parse (else every test below would be vacuous)', () => {
  it('has trace.Event with its 35 fields, the accept definitions, ids, sockaddr keys and AF names', () => {
    assert.equal(src.structs.get('Event')?.length, 35);
    assert.deepEqual([...src.events.keys()], ['accept', 'accept4']);
    assert.ok(src.ids.amd64.accept && src.ids.arm64.accept4);
    assert.deepEqual([...src.sockaddrKeys.keys()], [1, 2, 10]);
    assert.equal(src.afNames.length, 46);
  });
});

describe('format tracee: every record is a trace.Event as Go writes it', () => {
  for (const [name, rec] of corpus()) {
    it(name, () => {
      const line = formatLine(rec, 'tracee');
      assert.deepEqual(validateTracee(src, line), []);
      assert.ok(!line.includes('\n'), 'one line');
    });
  }
});

describe('format tracee: accept and accept4 as pkg/events/core.go defines them', () => {
  const cases = [
    ['accept4 (IPv4, pod)', sampleEvent()],
    ['accept (IPv6, host)', sampleHostEvent()],
    ['io_uring (unix)', sampleUnixEvent()],
  ] as const;
  for (const [what, ev] of cases) {
    it(`${what}: event name and id, argsNum, args by name and type in definition order`, () => {
      const l = parse(eventToTraceeLine(ev));
      const call = ev.source === Source.SOURCE_ACCEPT ? 'accept' : 'accept4';
      const def = src.events.get(call)!;
      assert.equal(l.eventName, def.name);
      assert.equal(l.eventId, String(src.ids[ARCH][call]));
      assert.equal(l.argsNum, def.args.length);
      assert.deepEqual(
        l.args.map((a) => ({ name: a.name, type: a.type })),
        def.args,
      );
      assert.equal(l.syscall, ev.source === Source.SOURCE_IO_URING ? 'io_uring_enter' : call);
    });
  }

  it('fills the context from the event: host ids, uid, namespaces, comm, cgroup, return value', () => {
    const ev = sampleEvent();
    const line = eventToTraceeLine(ev);
    const l = parse(line);
    assert.equal(l.hostProcessId, ev.process!.pid);
    assert.equal(l.hostThreadId, ev.process!.tid);
    assert.equal(l.hostParentProcessId, ev.process!.ppid);
    assert.equal(l.userId, ev.process!.uid);
    assert.equal(l.mountNamespace, ev.namespaces!.mnt);
    assert.equal(l.pidNamespace, ev.namespaces!.pid);
    assert.equal(l.processName, ev.process!.comm);
    assert.equal(digits(line, 'cgroupId'), ev.cgroup!.id.toString());
    assert.equal(l.returnValue, ev.ret);
    // Tracee stamps a syscall event with the syscall's entry, in epoch nanoseconds.
    assert.equal(digits(line, 'timestamp'), (ev.timeUnixNano - ev.durationNs).toString());
  });

  it('has namespace pids only where they are the host’s (the init pid namespace), else 0', () => {
    const host = parse(eventToTraceeLine(sampleEvent({ namespaces: { pid: 0xeffffffc } })));
    assert.deepEqual([host.processId, host.threadId, host.parentProcessId], [812, 813, 1]);
    const inPod = parse(eventToTraceeLine(sampleEvent({ namespaces: { pid: 4026532900 } })));
    assert.deepEqual([inPod.processId, inPod.threadId, inPod.parentProcessId], [0, 0, 0]);
  });

  it('fills container and kubernetes (trace.Container, trace.Kubernetes json names)', () => {
    const ev = sampleEvent();
    const l = parse(eventToTraceeLine(ev));
    const names = (s: string) => src.structs.get(s)!.map((f) => f.json);
    assert.deepEqual(Object.keys(l.container as object), names('Container'));
    assert.deepEqual(l.container, {
      id: ev.container!.id,
      name: ev.container!.name,
      image: ev.container!.image,
      imageDigest: ev.container!.imageId,
    });
    assert.equal(l.containerId, ev.container!.id);
    assert.deepEqual(l.kubernetes, { podName: ev.pod!.name, podNamespace: ev.pod!.namespace, podUID: ev.pod!.uid });
    assert.deepEqual(l.contextFlags, { containerStarted: true, isCompat: false });
    assert.equal(l.hostName, ev.pod!.name, 'a pod’s UTS hostname is its name');
  });

  it('writes a host process with empty container and kubernetes objects (Go writes struct values whatever omitempty says)', () => {
    const l = parse(eventToTraceeLine(sampleHostEvent()));
    assert.deepEqual([l.container, l.kubernetes, l.containerId, l.hostName], [{}, {}, '', 'node-a']);
  });

  it('writes sockfd and accept4 flags as int32 numbers (no flag names: Tracee does not parse them)', () => {
    const ev = sampleEvent();
    const l = parse(eventToTraceeLine(ev));
    assert.equal(l.args[0]!.value, ev.listener!.fd);
    assert.equal(l.args[3]!.value, ev.acceptFlags);
  });

  it('writes addrlen as a trace.Pointer number, 0 (NULL): Doorwatch keeps no user-space pointers', () => {
    const l = parse(eventToTraceeLine(sampleEvent()));
    assert.equal(l.args[2]!.value, 0);
  });
});

describe('format tracee: addr as readSockaddrFromBuff decodes the caller’s buffer', () => {
  /** The keys Tracee's decoder writes for a family, sorted as Go sorts a map's keys. */
  const keysFor = (family: number) => ['sa_family', ...(src.sockaddrKeys.get(family) ?? [])].sort();
  const addrOf = (l: Line) => l.args.find((a) => a.name === 'addr')!.value as Record<string, string>;

  it('AF_INET: sin_addr and sin_port, every value a string', () => {
    const a = addrOf(parse(eventToTraceeLine(sampleEvent())));
    assert.deepEqual(Object.keys(a), keysFor(2));
    assert.deepEqual(a, { sa_family: 'AF_INET', sin_addr: '10.0.0.9', sin_port: '51544' });
  });

  it('AF_INET6: sin6_* keys, the address as Go prints it (an IPv4-mapped one dotted)', () => {
    const v6 = sampleHostEvent({ userAddress: { present: true, addrlen: 28, familyNumber: 10, ip: '2001:db8::7', port: 40112 } });
    const a = addrOf(parse(eventToTraceeLine(v6)));
    assert.deepEqual(Object.keys(a), keysFor(10));
    assert.deepEqual(a, {
      sa_family: 'AF_INET6',
      sin6_addr: '2001:db8::7',
      sin6_flowinfo: '0',
      sin6_port: '40112',
      sin6_scopeid: '0',
    });
    const mapped = sampleEvent({
      socket: {
        family: AddressFamily.ADDRESS_FAMILY_INET6,
        local: { ip: '::ffff:10.0.0.5' },
        peer: { ip: '::ffff:10.0.0.9' },
        v4Mapped: true,
      },
      userAddress: { familyNumber: 10, addrlen: 28, ip: '::ffff:10.0.0.9' },
    });
    assert.equal(addrOf(parse(eventToTraceeLine(mapped))).sin6_addr, '10.0.0.9');
  });

  it('AF_UNIX: sun_path ("" for an unnamed peer, the usual client)', () => {
    const ev = sampleUnixEvent({ userAddress: { present: true, addrlen: 2, familyNumber: 1 } });
    const a = addrOf(parse(eventToTraceeLine(ev)));
    assert.deepEqual(Object.keys(a), keysFor(1));
    assert.deepEqual(a, { sa_family: 'AF_UNIX', sun_path: '' });
  });

  it('no buffer (NULL addr), a failed accept, an unreadable buffer: AF_UNSPEC alone', () => {
    for (const ev of [
      sampleHostEvent(),
      sampleEvent({ ret: -24, success: false, error: 'EMFILE' }),
      sampleEvent({ userAddress: { fault: true } }),
    ]) {
      assert.deepEqual(addrOf(parse(eventToTraceeLine(ev))), { sa_family: 'AF_UNSPEC' });
    }
  });

  it('names families as ParseSocketDomainArgument does, AF_UNSPEC past AF_MCTP', () => {
    src.afNames.forEach((name, n) => {
      assert.equal(traceeFamilyName(n), name);
    });
    assert.equal(traceeFamilyName(src.afNames.length), 'AF_UNSPEC');
  });
});

describe('format tracee: summaries and loss records', () => {
  it('a summary is an event of its own name and id, the sample’s context, the counts in args', () => {
    const ev = sampleSummary();
    const line = eventToTraceeLine(ev);
    const l = parse(line);
    assert.equal(l.eventName, TRACEE_SUMMARY_EVENT.name);
    assert.equal(l.eventId, String(TRACEE_SUMMARY_EVENT.id));
    assert.notEqual(l.eventName, 'accept4', 'never counted as an accept');
    assert.equal(l.hostProcessId, ev.process!.pid);
    assert.deepEqual(l.matchedPolicies, [ev.policy!.name]);
    const arg = (n: string) => l.args.find((a) => a.name === n);
    assert.deepEqual(arg('count'), { name: 'count', type: 'uint64', value: 57 });
    assert.deepEqual(arg('reason'), { name: 'reason', type: 'string', value: 'rate_limit' });
    assert.equal(l.argsNum, l.args.length);
    assert.match(line, new RegExp(`"name":"last_time","type":"uint64","value":${ev.summary!.lastTimeUnixNano}`));
  });

  it('a loss record is an event of its own: no task, the node, what was lost', () => {
    const loss = sampleLoss();
    const l = parse(lossToTraceeLine(loss));
    assert.equal(l.eventName, TRACEE_LOSS_EVENT.name);
    assert.equal(l.eventId, String(TRACEE_LOSS_EVENT.id));
    assert.equal(l.hostName, 'node-a');
    assert.equal(l.hostProcessId, 0);
    assert.deepEqual(
      l.args.slice(0, 3).map((a) => a.value),
      [101, 150, 50],
    );
  });
});

describe('format tracee: Go encoding/json details', () => {
  it('escapes <, >, & and U+2028/9 as Go does', () => {
    assert.equal(goString('a<b>&c\u2028'), '"a\\u003cb\\u003e\\u0026c\\u2028"');
    const l = eventToTraceeLine(sampleEvent({ process: { comm: 'x<y' } }));
    assert.match(l, /"processName":"x\\u003cy"/);
  });

  it('writes 64-bit values exactly', () => {
    const ev = sampleEvent({ cgroup: { id: 2n ** 63n + 5n } });
    assert.equal(digits(eventToTraceeLine(ev), 'cgroupId'), (2n ** 63n + 5n).toString());
  });

  it('is the same through writeEventTracee, formatLine and (parsed) formatRecord', () => {
    const ev = sampleEvent();
    const w = new JsonWriter(64);
    writeEventTracee(w, ev);
    writeEventTracee(w, ev);
    const one = eventToTraceeLine(ev);
    assert.equal(w.buf.toString('utf8', 0, w.pos), one + one);
    assert.equal(formatLine({ kind: 'event', event: ev }, 'tracee'), one);
    assert.deepEqual(formatRecord({ kind: 'event', event: ev }, 'tracee'), JSON.parse(one));
  });
});

describe('a sink in format tracee', () => {
  it('writes every record of a batch as one valid Tracee line (jsonl encodeLines)', () => {
    const batch = corpus().map(([, r]) => r);
    const w = new JsonWriter(1024);
    const ends: number[] = [];
    encodeLines(batch, 'tracee', w, ends);
    const lines = w.buf.toString('utf8', 0, w.pos).split('\n').slice(0, -1);
    assert.equal(lines.length, batch.length);
    for (const l of lines) assert.deepEqual(validateTracee(src, l), []);
    assert.equal(jsonlLine(batch[0]!, 'tracee').toString(), `${lines[0]}\n`);
  });
});

describe('the Tracee validator catches departures', () => {
  const base = eventToTraceeLine(sampleEvent());
  const cases: [string, (l: string) => string, RegExp][] = [
    ['eventId as a number', (l) => l.replace(/"eventId":"(\d+)"/, '"eventId":$1'), /^eventId: expected an integer in a string/],
    [
      'a key out of order',
      (l) => l.replace('"timestamp":', '"zz":0,"timestamp":'),
      /not a field of trace\.Event|not in trace\.Event's order/,
    ],
    ['a missing field', (l) => l.replace(/"cgroupId":\d+,/, ''), /^cgroupId: missing/],
    ['a string where Go has int', (l) => l.replace(/"userId":(\d+)/, '"userId":"$1"'), /^userId: expected an integer/],
    ['container as null', (l) => l.replace(/"container":\{[^}]*\}/, '"container":null'), /^container: expected an object/],
    [
      'an unknown container key',
      (l) => l.replace('"container":{', '"container":{"runtime":"x",'),
      /^container\.runtime: not a field/,
    ],
  ];
  for (const [what, edit, expected] of cases) {
    it(what, () => {
      const problems = validateTracee(src, edit(base));
      assert.ok(
        problems.some((p) => expected.test(p)),
        `expected ${expected}, got ${JSON.stringify(problems)}`,
      );
    });
  }
});
