#!/usr/bin/env node
// The `tablecache` command of the published package (compiled to dist/cli/bin.js).
import { missingPackageAdvice } from './missingPackage.ts';

// Imported, not linked statically, so that a missing optional package (commander,
// which main.ts needs at once) gets advice instead of a stack trace.
let main: typeof import('./main.ts').main;
try {
  ({ main } = await import('./main.ts'));
} catch (error) {
  const advice = missingPackageAdvice(error);
  if (advice === undefined) throw error;
  process.stderr.write(`error: ${advice}\n`);
  process.exit(2);
}
process.exitCode = await main(process.argv);
