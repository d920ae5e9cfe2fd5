#!/usr/bin/env node
// The `tablecache` command of the published package (compiled to dist/cli/bin.js).
import { main } from './main.ts';

process.exitCode = await main(process.argv);
