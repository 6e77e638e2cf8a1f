/**
 * libsodium sealed boxes, the encryption GitHub requires for secret values. libsodium is large
 * (~430 kB with its WebAssembly), so it is imported only when a secret is written: the bundler
 * puts it in a chunk of its own and every other run starts without it.
 */

/** Size of an X25519 public key, the only key a sealed box takes. */
const PUBLIC_KEY_BYTES = 32;

/** Encrypt `value` to the base64 X25519 `publicKey`; returns base64 as GitHub expects it. */
export async function sealForKey(publicKey: string, value: string): Promise<string> {
  const key = Buffer.from(publicKey, 'base64');
  if (key.length !== PUBLIC_KEY_BYTES) {
    throw new Error(`the public key is ${key.length} bytes, not ${PUBLIC_KEY_BYTES}`);
  }
  const { default: sodium } = await import('libsodium-wrappers');
  await sodium.ready;
  const sealed = sodium.crypto_box_seal(new TextEncoder().encode(value), key);
  return Buffer.from(sealed).toString('base64');
}
