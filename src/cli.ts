#!/usr/bin/env node
/** `npx fedi-token login <instance>`: the one-time bootstrap. See the README, "Getting your token". */
import { main } from './cli/main.ts';
import { endProcess } from './end-process.ts';

await main();
endProcess();
