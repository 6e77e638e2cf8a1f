#!/usr/bin/env node
/** `npx fedi-token login <instance>`: the one-time bootstrap. See docs/cli.md. */
import { main } from './cli/main.ts';

await main();
