/**
 * `cmae launch --nproc N [--hosts …] -- pretrain …`: a data-parallel job under the MPI launcher
 * (Open MPI's mpirun; any MPI's with a compatible command line). Every rank runs the same cmae
 * command with --distributed; rank 0 writes the outputs and shows the progress, the others' log
 * lines come prefixed with their rank. The same job by hand:
 *   mpirun -np N --bind-to none npx cmae pretrain --distributed --threads T …
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { ExitStatus, UsageError } from './errors';
import { parsePositiveInt } from './parse';

export interface LaunchOptions {
  nproc: string;
  hosts?: string;
  threadsPerRank?: string;
  mpirun: string;
}

/** The mpirun command line of a launch: [program, ...args]. Exported for the tests. */
export function launchCommand(o: LaunchOptions, command: string[], cores = availableParallelism()): string[] {
  const nproc = parsePositiveInt(o.nproc, '--nproc');
  if (command[0] !== 'pretrain') throw new UsageError(`cmae launch runs a data-parallel pretrain: give \`-- pretrain [options]\`, got '${command.join(' ')}'`);
  if (command.includes('--distributed')) throw new UsageError('cmae launch adds --distributed itself; leave it out of the command');
  if (command.includes('--threads') && o.threadsPerRank !== undefined) throw new UsageError('give one of --threads-per-rank and the command\'s --threads');
  // One machine: its cores shared among the ranks (a rank's threads would otherwise compete).
  const threads = o.threadsPerRank !== undefined ? parsePositiveInt(o.threadsPerRank, '--threads-per-rank') : Math.max(1, Math.floor(cores / nproc));
  const mpirunArgs = ['-np', String(nproc), '--bind-to', 'none'];
  if (o.hosts !== undefined) {
    if (!/^[\w.-]+(:\d+)?(,[\w.-]+(:\d+)?)*$/.test(o.hosts)) throw new UsageError(`--hosts must be host[:slots],host[:slots],…, got '${o.hosts}'`);
    mpirunArgs.push('--host', o.hosts);
  } else if (nproc > cores) {
    mpirunArgs.push('--oversubscribe'); // more ranks than cores on this machine: allowed, if slow
  }
  const cli = path.join(__dirname, 'main.js');
  const rankCommand = [process.execPath, cli, ...command, '--distributed', ...(command.includes('--threads') ? [] : ['--threads', String(threads)])];
  return [o.mpirun, ...mpirunArgs, ...rankCommand];
}

export async function runLaunch(command: string[], o: LaunchOptions): Promise<void> {
  const [program, ...args] = launchCommand(o, command);
  const env = { ...process.env };
  // Open MPI refuses to start as root without both of these (containers and CI often run as root).
  if (process.getuid?.() === 0) Object.assign(env, { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' });
  const status = await new Promise<number>((resolve, reject) => {
    // mpirun in a process group of its own, so that Ctrl-C reaches only this process: mpirun ends
    // the job at once on SIGINT, but forwards SIGUSR2 to every rank, which a rank takes as its
    // Ctrl-C (stop after the current step, all ranks alike; rank 0 saves a checkpoint).
    const child = spawn(program!, args, { stdio: 'inherit', env, detached: true });
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new UsageError(`no MPI launcher '${program}' (Debian/Ubuntu: apt install openmpi-bin; or give --mpirun PATH)`) : e),
    );
    let interrupts = 0;
    const onInterrupt = () => {
      interrupts++;
      if (interrupts === 1) {
        process.stderr.write('cmae launch: interrupted: the ranks finish the current step and save a checkpoint (Ctrl-C again to end them now)\n');
        child.kill('SIGUSR2');
      } else {
        child.kill('SIGINT');
      }
    };
    // (and this process must not outlive a job it started: a hang-up or kill ends mpirun too)
    const onExit = () => child.kill('SIGTERM');
    process.on('SIGINT', onInterrupt);
    process.on('SIGTERM', onInterrupt);
    process.on('exit', onExit);
    child.on('close', (code, signal) => {
      process.off('SIGINT', onInterrupt);
      process.off('SIGTERM', onInterrupt);
      process.off('exit', onExit);
      resolve(code ?? (signal ? 128 + 15 : 1));
    });
  });
  if (status !== 0) throw new ExitStatus(status);
}
