import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleRecoveryWorkflows } from './bundle.js';

/*
 * Writes the workflow bundle at build time (the Docker image runs this), so a
 * worker started with WORKFLOW_BUNDLE_PATH skips webpack at every start.
 * Usage: build-bundle [output file], default dist/workflow-bundle.js.
 */
const output = path.resolve(process.argv[2] ?? 'dist/workflow-bundle.js');
await mkdir(path.dirname(output), { recursive: true });
await writeFile(output, await bundleRecoveryWorkflows());
console.log(`Workflow bundle written to ${output}`);
