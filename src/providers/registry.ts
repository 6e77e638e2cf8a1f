import type { Platform } from '../config.ts';
import { anywebProvider } from './anyweb.ts';
import { mastodonProvider } from './mastodon.ts';
import { misskeyProvider } from './misskey.ts';
import { oauth2Provider } from './oauth2.ts';
import type { Provider } from './provider.ts';

/** One provider per platform; adding a platform is one line here and one module beside it. */
const PROVIDERS: Partial<Record<Platform, Provider>> = {
  mastodon: mastodonProvider,
  misskey: misskeyProvider,
  anyweb: anywebProvider,
  oauth2: oauth2Provider,
};

export function providerFor(platform: Platform): Provider {
  const provider = PROVIDERS[platform];
  if (!provider) throw new Error(`No provider for platform '${platform}'`);
  return provider;
}
