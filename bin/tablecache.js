#!/usr/bin/env node
// The CLI from the TypeScript sources, for this repository (tests, the Docker
// image's build stage, `node bin/tablecache.js …`): tsx compiles it on the fly.
// The published package's `tablecache` command is the compiled dist/cli/bin.js.
import { register } from 'tsx/esm/api';

register();
await import('../cli/bin.ts');
