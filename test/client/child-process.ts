import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** A child process with its output collected, and ways to wait on both. */
export interface WatchedChild {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match in stdout; rejects if the process ends or time runs out first. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves once the process has exited and its output is closed. */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Children still running, and whether each leads a process group of its own (spawned detached). */
const running = new Map<ChildProcess, boolean>();

export function spawnWatched(command: string, args: string[], options: SpawnOptions): WatchedChild {
  const child = spawn(command, args, { cwd: repoRoot, ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  running.set(child, options.detached === true);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  const waitForOutput = (pattern: RegExp, timeoutMs = 60_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const match = stdout.match(pattern);
        if (!match) return;
        cleanup();
        resolve(match);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no ${pattern} in the output after ${timeoutMs} ms:\n${stdout}\n${stderr}`));
      }, timeoutMs);
      const onClose = () => {
        cleanup();
        reject(new Error(`process ended without ${pattern} in its output:\n${stdout}\n${stderr}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        child.stdout?.off('data', check);
        child.off('close', onClose);
      };
      child.stdout?.on('data', check);
      child.once('close', onClose);
      check();
    });
  return { child, stdout: () => stdout, stderr: () => stderr, waitForOutput, closed };
}

/** For afterEach: kills what a failed test left running (the whole group when it was spawned detached). */
export async function killLeftoverChildren(): Promise<void> {
  await Promise.all(
    [...running].map(([child, leadsGroup]) => {
      const done = new Promise((resolve) => child.once('close', resolve));
      if (leadsGroup && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      else child.kill('SIGKILL');
      return done;
    }),
  );
}

/**
 * Runs a TypeScript entry point as the npm scripts do: one Node.js process with tsx's loader. Not the tsx launcher,
 * which answers a signal its child does not acknowledge within 30 ms with SIGKILL, and leaves a second process
 * between a kill and its target.
 */
export function spawnTypeScript(script: string, args: string[], options: SpawnOptions): WatchedChild {
  return spawnWatched(process.execPath, ['--import', 'tsx', script, ...args], options);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as a user would, with the test's Temporal address unless `env` overrides it. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const watched = spawnTypeScript('client/cli.ts', args, { env: { ...process.env, ...env } });
  const { code } = await watched.closed;
  return { code, stdout: watched.stdout(), stderr: watched.stderr() };
}

/** Pids of live processes whose command line contains every one of `parts`. */
export function processesMatching(...parts: string[]): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
        return parts.every((part) => commandLine.includes(part));
      } catch {
        return false; // ended while we looked
      }
    })
    .map(Number);
}
