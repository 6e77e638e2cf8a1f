/**
 * Loopback host names, the only hosts where plain http:// is allowed (for servers, metadata
 * endpoints and GITHUB_API_URL alike): traffic to them never leaves the machine.
 */
export const LOOPBACK_HOSTS = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;
