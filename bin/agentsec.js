#!/usr/bin/env node
// Runs the TypeScript sources directly (Node >= 22.18 strips types natively).
import { main } from '../src/cli.ts';

process.exitCode = await main(process.argv.slice(2));
// Exit once the drain is done even if a client keeps a socket open.
process.exit();
