/**
 * Seeded pseudo-random numbers (mulberry32) for GREASE code points: reproducible in tests, and GREASE needs
 * unpredictability for interoperability testing only, not secrecy (RFC 9114 §7.2.4.1, §7.2.8).
 */
export function createRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A reserved `0x1f * N + 0x21` code point (RFC 9114 §7.2.4.1, §7.2.8, §8.1), N drawn from `random`. */
export function greaseCodepoint(random: () => number): bigint {
  // N < 2^32 keeps the result a 62-bit varint with room to spare.
  const n = BigInt(Math.floor(random() * 0x100000000));
  return 0x1fn * n + 0x21n;
}
