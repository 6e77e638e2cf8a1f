// fedi-token sends every request through HttpClient.request, whose proxy support uses `tunnel`.
// undici's ProxyAgent backs only getAgentDispatcher(), which is never called here.
export class ProxyAgent {
  constructor() {
    throw new Error('undici is not bundled with fedi-token; use HttpClient.request');
  }
}
