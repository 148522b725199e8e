// A real redis-server for the tests: the one .ci/run starts (AGENTSEC_TEST_REDIS_URL), else one
// spawned here on a free loopback port when redis-server is installed. Each test takes its own
// key prefix, so tests sharing a server never see each other's keys.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { freePort } from '../../bench/collector-process.ts';

export interface TestRedis {
  url: string;
  /** A fresh key prefix (with a hash tag, as the config's default has). */
  prefix(): string;
  stop(): Promise<void>;
}

/** Why Redis tests cannot run here, or undefined when they can. */
export function redisUnavailable(): string | undefined {
  if (process.env.AGENTSEC_TEST_REDIS_URL) return undefined;
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return probe.error || probe.status !== 0 ? 'redis-server is not installed (apt-get install redis-server; .ci/run installs it) and AGENTSEC_TEST_REDIS_URL is not set' : undefined;
}


export async function startRedis(): Promise<TestRedis> {
  const prefix = () => `agentsec-test:{${randomBytes(6).toString('hex')}}:`;
  const shared = process.env.AGENTSEC_TEST_REDIS_URL;
  if (shared) return { url: shared, prefix, stop: async () => {} };
  const port = await freePort();
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}: ${out}`));
    });
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    prefix,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
