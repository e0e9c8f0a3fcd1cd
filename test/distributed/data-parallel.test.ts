/**
 * Data-parallel training across processes (issue 16), on one machine over loopback: real
 * `mpirun` (Debian's Open MPI, .ci/run installs it), one compute thread per rank, the ranks
 * running test/distributed/rank-child.cjs against the compiled package (dist/, built by npm ci).
 *
 * Equivalence: two ranks at global batch 64 must give the bits of one process at batch 64 (the
 * CPU cuts a batch into 2 fixed parts; each rank computes one; the gradient sum is in rank order).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { emulatedAddonPath } from '../native/build';

const child = path.join(__dirname, 'rank-child.cjs');
const root = mkdtempSync(path.join(tmpdir(), 'cmae-dist-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface RankRecord {
  rank?: number;
  worldSize?: number;
  engine?: string;
  trainable?: number;
  modelBytes?: number;
  steps: number;
  aborted: boolean;
  losses: number[][];
  params: string;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  stdout: string;
  seconds: number;
}

// mpirun as root needs Open MPI's two consent variables (CI runs as root); --bind-to none: a
// rank's threads are not pinned to one core.
const mpiEnv = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1', OMPI_MCA_rmaps_base_oversubscribe: '1' };

function run(command: string, args: string[], onSpawn?: (pid: number) => void, timeoutMs = 120_000, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const p = spawn(command, args, { env: { ...mpiEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('spawn', () => onSpawn?.(p.pid!));
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, seconds: (Date.now() - started) / 1000 });
    });
  });
}

// env: for mpirun (OMPI_MCA_* settings) and exported to the ranks.
function mpirun(np: number, childArgs: string[], onSpawn?: (pid: number) => void, env: Record<string, string> = {}): Promise<Run> {
  const exports = Object.keys(env).flatMap((k) => ['-x', `${k}=${env[k]}`]);
  return run('mpirun', ['--oversubscribe', '--bind-to', 'none', '-np', String(np), ...exports, process.execPath, child, ...childArgs], onSpawn, 120_000, env);
}

function single(childArgs: string[], env: Record<string, string> = {}): Promise<Run> {
  return run(process.execPath, [child, ...childArgs], undefined, 120_000, env);
}

function record(dir: string, name: string): RankRecord {
  return JSON.parse(readFileSync(path.join(dir, `${name}.json`), 'utf8')) as RankRecord;
}

function fresh(name: string): string {
  const dir = path.join(root, name);
  rmSync(dir, { recursive: true, force: true });
  return mkdtempSync(`${dir}-`);
}

function expectOk(r: Run): void {
  if (r.code !== 0) throw new Error(`exit ${r.code} (${r.signal}):\n${r.stderr}\n${r.stdout}`);
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('mpirun -np 2 at global batch 64 = one process at batch 64, bit for bit', () => {
  for (const method of ['cmae', 'mae', 'mocov3', 'simclr', 'maskdistill', 'densecl']) {
    it(`${method}: 20 AdamW + EMA steps, every loss and every parameter`, async () => {
      const dir = fresh(method);
      expectOk(await single([dir, method, '20', '64']));
      // bucketMiB 0.05: the 83k-parameter gradient is reduced in 7 buckets (the default would be one)
      expectOk(await mpirun(2, [dir, method, '20', '64', JSON.stringify({ bucketMiB: 0.05 })]));
      const alone = record(dir, 'single');
      const r0 = record(dir, '0');
      const r1 = record(dir, '1');
      expect([r0.rank, r0.worldSize, r1.rank, r1.worldSize]).toEqual([0, 2, 1, 2]);
      expect(r0.engine).toMatch(/MPI/);
      expect(r0.steps).toBe(20);
      expect(r1.steps).toBe(20);
      // rank 0 reports the steps; its losses (the whole batch's) are the single process's
      expect(r0.losses).toHaveLength(20);
      expect(r0.losses).toEqual(alone.losses);
      expect(alone.losses.every((l) => l.every(Number.isFinite))).toBe(true);
      // parameters (incl. the EMA branch and the BatchNorm running statistics), as float32 bits
      expect(r0.params.length).toBeGreaterThan(1000);
      expect(r0.params === alone.params).toBe(true);
      expect(r1.params === alone.params).toBe(true);
      // and training moved them: the loss changed from the first step to the last
      expect(alone.losses[0]![0]).not.toBe(alone.losses[19]![0]);
      // each rank planned its own samples' activations only (the heads' are the global batch's)
      // (measured: 0.52 to 0.56 of one process's, the arenas being the same size on each)
      expect(r0.modelBytes).toBeLessThan(0.6 * alone.modelBytes!);
    });
  }

  it('over TCP (the transport between machines, here on loopback) as over shared memory: the same bits', async () => {
    const dir = fresh('tcp');
    expectOk(await single([dir, 'cmae', '20', '64']));
    // Open MPI's TCP transport only (no shared-memory one), on the loopback interface
    expectOk(await mpirun(2, [dir, 'cmae', '20', '64', JSON.stringify({ bucketMiB: 0.05 })], undefined, { OMPI_MCA_btl: 'tcp,self', OMPI_MCA_btl_tcp_if_include: 'lo' }));
    expect(record(dir, '0').params === record(dir, 'single').params).toBe(true);
    expect(record(dir, '1').params === record(dir, 'single').params).toBe(true);
  });

  // Uneven shares: 7 images (or MoCo v3's 2 × 10 views, a part boundary inside a view) in 3 parts,
  // and 0.02 MiB buckets whose slices are uneven across the 3 ranks (a case that once overran the
  // plugin's receive buffer).
  for (const [method, batch] of [['cmae', '7'], ['mocov3', '10'], ['mae', '30'], ['densecl', '10']] as const) {
    it(`three ranks (3 batch parts), ${method} at batch ${batch}: the same parameters on every rank`, async () => {
      const dir = fresh(`three-${method}`);
      expectOk(await mpirun(3, [dir, method, '8', batch, JSON.stringify({ bucketMiB: 0.02 })]));
      const records = [0, 1, 2].map((r) => record(dir, String(r)));
      expect(records.map((r) => r.steps)).toEqual([8, 8, 8]);
      expect(records[1]!.params === records[0]!.params && records[2]!.params === records[0]!.params).toBe(true);
      expect(records[0]!.losses.every((l) => l.every(Number.isFinite))).toBe(true);
    });
  }

  it('a time budget follows rank 0\'s clock: every rank stops after the same step with the same parameters', async () => {
    const dir = fresh('budget');
    // (each rank's own clock starts when its process got there: they differ; the delay makes the
    // budget span several steps)
    expectOk(await mpirun(2, [dir, 'cmae', '0', '16', JSON.stringify({ seconds: 1.5, delayMs: 15 })]));
    const r0 = record(dir, '0');
    const r1 = record(dir, '1');
    expect(r0.steps).toBeGreaterThan(3);
    expect(r1.steps).toBe(r0.steps);
    expect(r0.params === r1.params).toBe(true);
  });

  it('an abort on one rank stops every rank after the same step', async () => {
    const dir = fresh('abort');
    expectOk(await mpirun(2, [dir, 'cmae', '20', '16', JSON.stringify({ abortAtStep: 7, abortRank: 1 })]));
    const r0 = record(dir, '0');
    const r1 = record(dir, '1');
    expect([r0.aborted, r1.aborted]).toEqual([true, true]);
    expect(r0.steps).toBe(r1.steps);
    expect(r0.steps).toBeLessThan(20);
    expect(r0.params === r1.params).toBe(true);
  });

  it('CUDA ranks (the emulated device, exchanging through host copies) agree bit for bit and follow one CUDA process', async () => {
    // The CUDA backend computes a batch in 1 part, 2 ranks in 2: the sums' order differs, so the
    // comparison with one process is to rounding (first step) and to Adam's amplification of it.
    expect(existsSync(emulatedAddonPath), `${emulatedAddonPath} (built by the native test build)`).toBe(true);
    const env = { CMAE_ADDON_PATH: emulatedAddonPath };
    const dir = fresh('cuda');
    const args = [dir, 'cmae', '3', '8', JSON.stringify({ device: 'cuda' })];
    expectOk(await single(args, env));
    expectOk(await mpirun(2, args, undefined, env));
    const alone = record(dir, 'single');
    const r0 = record(dir, '0');
    expect(r0.params === record(dir, '1').params).toBe(true);
    expect(Math.abs(r0.losses[0]![0]! - alone.losses[0]![0]!)).toBeLessThan(1e-6 * alone.losses[0]![0]!);
    for (let i = 0; i < 3; i++) expect(Math.abs(r0.losses[i]![0]! - alone.losses[i]![0]!)).toBeLessThan(1e-3 * alone.losses[i]![0]!);
  });

  // The plugin's NCCL path (device buffers, native/collective/mpi_plugin.cc) with a stand-in NCCL
  // (test/native/fake_nccl.cc: NCCL's send/receive and cuStreamQuery over MPI) on the emulated
  // device, whose memory is host memory: the bootstrap, the grouped transfers, the rank-ordered sum
  // composed in core/collective.cc, the stream polling and the abort run here without a GPU.
  const fakeNccl = path.join(path.dirname(emulatedAddonPath), 'libcmae_fake_nccl.so');
  const ncclEnv = { CMAE_ADDON_PATH: emulatedAddonPath, CMAE_NCCL_LIBRARY: fakeNccl, CMAE_CUDA_DRIVER_LIBRARY: fakeNccl };
  for (const [method, ranks] of [['cmae', 2], ['mocov3', 3]] as const) {
    it(`${ranks} CUDA ranks exchanging device buffers over NCCL (${method}): the same bits as through host copies`, async () => {
      expect(existsSync(fakeNccl), `${fakeNccl} (built by the native test build)`).toBe(true);
      const dir = fresh(`nccl-${method}`);
      // bucketMiB 0.05: the gradient sum runs in several buckets with uneven slices
      const args = [dir, method, '4', '10', JSON.stringify({ device: 'cuda', bucketMiB: 0.05 })];
      const rankIds = [...Array(ranks).keys()].map(String);
      expectOk(await mpirun(ranks, args, undefined, { CMAE_ADDON_PATH: emulatedAddonPath, CMAE_NCCL_LIBRARY: 'none' }));
      const staged = rankIds.map((r) => record(dir, r));
      expect(staged[0]!.engine).not.toMatch(/NCCL/);
      const r = await mpirun(ranks, args, undefined, ncclEnv);
      expectOk(r);
      const device = rankIds.map((r) => record(dir, r));
      expect(device[0]!.engine).toMatch(/MPI.* \+ NCCL 2\.18\.0 \(device buffers\)$/);
      // the gradient sums went through the stand-in: per step each rank sends (W − 1)/W of the
      // gradient in the all-to-all and as much in the all-gather
      const sent = [...r.stderr.matchAll(/fake-nccl: rank (\d) sent (\d+) bytes in (\d+) sends/g)].map((m) => [Number(m[1]), Number(m[2])]);
      expect(sent.map(([rank]) => String(rank)).sort()).toEqual(rankIds);
      const perStep = 2 * ((ranks - 1) / ranks) * device[0]!.trainable! * 4; // (slices rounded per bucket: 1 % slack)
      for (const [, bytes] of sent) expect(bytes).toBeGreaterThan(0.99 * 4 * perStep);
      expect(device[0]!.losses).toEqual(staged[0]!.losses);
      for (const d of device) expect(d.params === staged[0]!.params).toBe(true);
      expect(device[0]!.losses.every((l) => l.every(Number.isFinite))).toBe(true);
    });
  }

  it('an NCCL exchange that never completes stops the job within the timeout, naming the exchange and the rank', async () => {
    const dir = fresh('nccl-stall');
    // the 3rd NCCL group on each rank never completes (a peer hanging inside NCCL)
    const r = await mpirun(2, [dir, 'cmae', '4', '8', JSON.stringify({ device: 'cuda', timeoutSeconds: 2 })], undefined, {
      ...ncclEnv,
      CMAE_FAKE_NCCL_STALL_AFTER: '2',
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/DistributedError: the .* \(NCCL\) on rank [01]: did not complete within 2 s \(a rank died or hangs\)/);
    expect(r.stderr).toContain('aborted its communicator');
    expect(existsSync(path.join(dir, '0.json'))).toBe(false);
  });

  it('ranks that were started for different runs are refused at start, naming the rank and the field', async () => {
    const dir = fresh('mismatch');
    const r = await mpirun(2, [dir, 'cmae', '5', '16', JSON.stringify({ mismatch: true })]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('DistributedError: the ranks disagree on the training run: rank 1 has lr "0.002" where rank 0 has "0.001"');
    expect(existsSync(path.join(dir, '0.json'))).toBe(false); // no step ran
  });

  it('ranks whose parameters drifted apart are caught by the checksum after the step it runs at', async () => {
    const dir = fresh('checksum');
    const r = await mpirun(2, [dir, 'cmae', '20', '16', JSON.stringify({ perturbRank1: true, checksumEvery: 3 })]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("DistributedError: after step 3 the parameters of rank 1 differ from rank 0's (checksum)");
  });
});

describe('faults', () => {
  it('a killed rank ends the job within the timeout with a message naming it, and resume continues as if uninterrupted', async () => {
    const dir = fresh('kill');
    const out = path.join(dir, 'run');
    const options = { outDir: out, checkpointEvery: 4, delayMs: 60, timeoutSeconds: 20 };
    let mpirunPid = 0;
    const killed = mpirun(2, [dir, 'cmae', '20', '16', JSON.stringify(options)], (pid) => (mpirunPid = pid));
    // after the checkpoint of step 8, kill rank 1
    const metrics = path.join(out, 'metrics.jsonl');
    await waitFor(() => existsSync(metrics) && readFileSync(metrics, 'utf8').split('\n').filter(Boolean).length >= 10, 60_000);
    const rank1 = Number(readFileSync(path.join(out, 'pid-1'), 'utf8'));
    process.kill(rank1, 'SIGKILL');
    const r = await killed;
    expect(mpirunPid).toBeGreaterThan(0);
    expect(r.code).not.toBe(0);
    expect(r.seconds).toBeLessThan(options.timeoutSeconds + 30);
    expect(r.stderr).toMatch(/rank 1 .*signal 9|rank 1 did not reach/s);
    // resume on both ranks from rank 0's last checkpoint (step 8 or 12) to step 20
    expectOk(await mpirun(2, [dir, 'cmae', '20', '16', JSON.stringify({ ...options, delayMs: 0, resumeFrom: path.join(out, 'checkpoint.safetensors') })]));
    const resumed = record(dir, '0');
    expect(resumed.steps).toBe(20);
    const steps = readFileSync(metrics, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { step: number }).step);
    expect(steps).toEqual(Array.from({ length: 20 }, (_, i) => i + 1)); // no step twice after the resume
    // the uninterrupted run, in one process
    const plain = fresh('kill-plain');
    expectOk(await single([plain, 'cmae', '20', '16']));
    expect(resumed.params === record(plain, 'single').params).toBe(true);
    expect(record(dir, '1').params === resumed.params).toBe(true);
  });

  it('a hung rank (stopped) makes the others stop within the timeout, naming it', async () => {
    const dir = fresh('hang');
    const out = path.join(dir, 'run');
    const options = { outDir: out, delayMs: 50, timeoutSeconds: 3 };
    const hung = mpirun(2, [dir, 'cmae', '400', '16', JSON.stringify(options)]);
    const metrics = path.join(out, 'metrics.jsonl');
    await waitFor(() => existsSync(metrics) && readFileSync(metrics, 'utf8').split('\n').filter(Boolean).length >= 3, 60_000);
    const rank1 = Number(readFileSync(path.join(out, 'pid-1'), 'utf8'));
    const stoppedAt = Date.now();
    process.kill(rank1, 'SIGSTOP');
    const r = await hung;
    const seconds = (Date.now() - stoppedAt) / 1000;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/DistributedError: rank 1 did not reach the .* within 3 s: it died, hangs/);
    expect(seconds).toBeLessThan(options.timeoutSeconds + 20);
  });
});

describe('the CLI: cmae launch and pretrain --distributed', () => {
  const cli = path.join(__dirname, '..', '..', 'dist', 'cjs', 'cli', 'main.js');
  const tensorsOf = async (file: string) => (await import('../../src/io/safetensors')).readSafetensors(file);

  it('cmae launch --nproc 2 -- pretrain writes the checkpoint one process writes, bit for bit; rank 1 logs with its rank', async () => {
    const dir = fresh('cli');
    const common = ['--preset', 'micro', '--steps', '12', '--no-eval', '--seed', '3'];
    const launched = await run(process.execPath, [cli, 'launch', '--nproc', '2', '--', 'pretrain', ...common, '--out', path.join(dir, 'two')]);
    expectOk(launched);
    expect(launched.stderr).toContain('[rank 1] cmae pretrain: cmae micro');
    expect(launched.stderr).toContain('rank 0 of 2 (Open MPI');
    expect(launched.stdout).toContain('done: 12 steps');
    expectOk(await run(process.execPath, [cli, 'pretrain', ...common, '--out', path.join(dir, 'one')]));
    const two = await tensorsOf(path.join(dir, 'two', 'checkpoint.safetensors'));
    const one = await tensorsOf(path.join(dir, 'one', 'checkpoint.safetensors'));
    expect([...two.tensors.keys()]).toEqual([...one.tensors.keys()]);
    for (const [name, t] of one.tensors) {
      const u = two.tensors.get(name)!;
      expect(Buffer.compare(Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), name).toBe(0);
    }
    expect(two.metadata.step).toBe('12');
  });

  it('Ctrl-C on cmae launch stops every rank after the same step; rank 0 saves a checkpoint; exit 130', async () => {
    const dir = fresh('ctrl-c');
    const out = path.join(dir, 'run');
    let pid = 0;
    const launched = run(process.execPath, [cli, 'launch', '--nproc', '2', '--', 'pretrain', '--preset', 'micro', '--steps', '100000', '--no-eval', '--out', out], (p) => (pid = p));
    const metrics = path.join(out, 'metrics.jsonl');
    await waitFor(() => existsSync(metrics) && readFileSync(metrics, 'utf8').split('\n').filter(Boolean).length >= 3, 60_000);
    process.kill(pid, 'SIGINT');
    const r = await launched;
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('cmae launch: interrupted: the ranks finish the current step and save a checkpoint');
    expect(r.stderr).toContain('[rank 1] interrupted: finishing the current step');
    const steps = readFileSync(metrics, 'utf8').split('\n').filter(Boolean).length;
    expect(r.stdout).toContain(`stopped at step ${steps}; checkpoint saved`);
    const saved = await tensorsOf(path.join(out, 'checkpoint.safetensors'));
    expect(saved.metadata.step).toBe(String(steps));
  });

  it('launch shares the cores among the ranks and oversubscribes only beyond them', async () => {
    const { launchCommand } = await import('../../src/cli/launch');
    const base = { nproc: '2', mpirun: 'mpirun' };
    const two = launchCommand(base, ['pretrain', '--steps', '5'], 8);
    expect(two.slice(0, 5)).toEqual(['mpirun', '-np', '2', '--bind-to', 'none']);
    expect(two).not.toContain('--oversubscribe');
    expect(two.slice(-6)).toEqual(['pretrain', '--steps', '5', '--distributed', '--threads', '4']);
    const many = launchCommand({ ...base, nproc: '4' }, ['pretrain'], 2);
    expect(many).toContain('--oversubscribe');
    expect(many.slice(-2)).toEqual(['--threads', '1']);
    const own = launchCommand({ ...base, threadsPerRank: '3' }, ['pretrain'], 8);
    expect(own.slice(-2)).toEqual(['--threads', '3']);
    const hosts = launchCommand({ ...base, hosts: 'a:2,b:2' }, ['pretrain'], 8);
    expect(hosts.slice(5, 7)).toEqual(['--host', 'a:2,b:2']);
  });

  it('refuses what a distributed run cannot do, in one line naming the option', async () => {
    const cases: [string[], RegExp][] = [
      [['pretrain', '--distributed', '--steps', '2'], /--distributed: start the ranks with an MPI launcher/],
      [['pretrain', '--dist-timeout', '5', '--steps', '2'], /--dist-timeout and --dist-bucket-mb are for --distributed runs/],
      [['launch', '--', 'eval'], /cmae launch runs a data-parallel pretrain/],
      [['launch', '--', 'pretrain', '--distributed'], /adds --distributed itself/],
      [['launch', '--nproc', '0', '--', 'pretrain'], /--nproc/],
      [['launch', '--hosts', 'a b', '--', 'pretrain'], /--hosts must be host\[:slots\]/],
      [['launch', '--mpirun', '/nonexistent/mpirun', '--', 'pretrain', '--steps', '1'], /no MPI launcher '\/nonexistent\/mpirun'/],
    ];
    for (const [args, message] of cases) {
      const r = await run(process.execPath, [cli, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });
});
