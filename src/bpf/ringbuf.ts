import koffi from 'koffi';
import { DoorwatchError } from '../errors.js';
import { MAP_FAILED, MAP_SHARED, mmap, munmap, PROT_READ, PROT_WRITE, pageSize } from './libc.js';

/**
 * Zero-copy reader of a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) over mmap'd
 * memory, the protocol of libbpf's ringbuf_process_ring():
 *   offset 0, RW, one page:          consumer position (u64)
 *   offset page, RO, page + 2*size:  producer position (u64), then the data
 *                                    area mapped twice so no record wraps.
 * Each record: u32 length word (BUSY = bit 31, DISCARD = bit 30), u32 page
 * offset, then the payload; records are 8-byte aligned.
 *
 * Records are handed to the callback as (view, offset, length) into the
 * mapping itself: the callback must decode before returning, because the
 * consumer position is published right after the batch.
 */
const BUSY = 0x80000000;
const DISCARD = 0x40000000;
const HDR = 8;

export type RecordHandler = (view: DataView, offset: number, length: number) => void;

export interface DrainResult {
  records: number;
  /** True when it stopped at maxRecords with more waiting. */
  more: boolean;
}

export class RingReader {
  readonly #size: number;
  readonly #mask: number;
  readonly #page: number;
  readonly #consumer: bigint;
  readonly #producer: bigint;
  readonly #consPos: BigUint64Array;
  readonly #prodPos: BigUint64Array;
  readonly #data: DataView;
  readonly #words: Uint32Array;
  #closed = false;

  constructor(mapFd: number, size: number) {
    if (size <= 0 || (size & (size - 1)) !== 0) throw new Error(`ring size ${size} is not a power of two`);
    this.#size = size;
    this.#mask = size - 1;
    this.#page = pageSize();
    const cons = mmap(null, this.#page, PROT_READ | PROT_WRITE, MAP_SHARED, mapFd, 0);
    if (cons === null || cons === MAP_FAILED) {
      throw new DoorwatchError(
        'DW_ERR_BPF_RINGBUF',
        'cannot mmap the ring buffer consumer page',
        'check RLIMIT_MEMLOCK / CAP_SYS_RESOURCE',
      );
    }
    const prodLen = this.#page + 2 * size;
    const prod = mmap(null, prodLen, PROT_READ, MAP_SHARED, mapFd, this.#page);
    if (prod === null || prod === MAP_FAILED) {
      munmap(cons, this.#page);
      throw new DoorwatchError(
        'DW_ERR_BPF_RINGBUF',
        'cannot mmap the ring buffer data pages',
        'check RLIMIT_MEMLOCK / CAP_SYS_RESOURCE',
      );
    }
    this.#consumer = cons;
    this.#producer = prod;
    this.#consPos = new BigUint64Array(koffi.view(cons, 8));
    const prodView = koffi.view(prod, prodLen);
    this.#prodPos = new BigUint64Array(prodView, 0, 1);
    this.#data = new DataView(prodView, this.#page, 2 * size);
    this.#words = new Uint32Array(prodView, this.#page, (2 * size) / 4);
  }

  drain(onRecord: RecordHandler, maxRecords = Number.POSITIVE_INFINITY): DrainResult {
    if (this.#closed) return { records: 0, more: false };
    let cons = Number(Atomics.load(this.#consPos, 0));
    const prod = Number(Atomics.load(this.#prodPos, 0));
    let records = 0;
    while (cons < prod && records < maxRecords) {
      const off = cons & this.#mask;
      // Acquire load of the length word: pairs with the kernel's release
      // store when it commits the record.
      const len = Atomics.load(this.#words, off >>> 2);
      if (len & BUSY) break;
      const payload = len & ~(BUSY | DISCARD);
      if (!(len & DISCARD)) {
        onRecord(this.#data, off + HDR, payload);
        records++;
      }
      cons += (payload + HDR + 7) & ~7;
    }
    Atomics.store(this.#consPos, 0, BigInt(cons));
    return { records, more: cons < prod };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    munmap(this.#consumer, this.#page);
    munmap(this.#producer, this.#page + 2 * this.#size);
  }
}
