/** An oracle violation: the code under test accepted something it should not have, or disagrees with itself. */
export class FuzzPropertyError extends Error {
  override readonly name = 'FuzzPropertyError';
}
