// Jest's global setup: unpack the packaged Chromium once, before the workers start, so that two
// test files launching a browser at the same moment never race on a half-written binary.
export default async function unpackChromium() {
  if (process.env.FEDI_TOKEN_CHROMIUM) return;
  const packaged = await import('@sparticuz/chromium');
  await packaged.default.executablePath();
}
