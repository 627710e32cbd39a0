/*
 * Several pods and processes interleave on a busy node: the line writers
 * remember a segment per process or per pod, not one for the last event, or
 * every switch between two sources writes the whole segment again. Each
 * entry is checked by value before its bytes are reused (the key only picks
 * the entry). Bounded: past SEG_KEYS distinct keys the memo starts over.
 */
const SEG_KEYS = 4096;

export class SegMemo<S> {
  readonly #map = new Map<unknown, S>();
  constructor(readonly make: () => S) {}

  get(key: unknown): S {
    let s = this.#map.get(key);
    if (s === undefined) {
      if (this.#map.size >= SEG_KEYS) this.#map.clear();
      s = this.make();
      this.#map.set(key, s);
    }
    return s;
  }
}
