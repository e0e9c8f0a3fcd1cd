#!/usr/bin/env node
/**
 * The `cmae` command line. A thin layer over the public API: every command maps to library calls.
 * Bad arguments and missing files print one clear line and exit with code 2 (never a stack trace).
 */
import { Command, CommanderError } from 'commander';
import { CmaeError } from '../errors';
import { runInfo } from './info';

export class UsageError extends Error {}

function buildProgram(): Command {
  const program = new Command();
  program
    .name('cmae')
    .description('Contrastive Masked Autoencoder pre-training for vision transformers, native and fast, from Node.js.')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('info')
    .description('print the version, build, SIMD path, threads and CUDA status')
    .option('--json', 'print one JSON document')
    .action(async (options: { json?: boolean }) => runInfo(options));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander already printed its message (help and version exit with code 0).
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof UsageError || error instanceof CmaeError) {
      process.stderr.write(`cmae: ${(error as Error).message.split('\n')[0]}\n`);
      const rest = (error as Error).message.split('\n').slice(1);
      if (rest.length > 0) process.stderr.write(`${rest.join('\n')}\n`);
      return 2;
    }
    process.stderr.write(`cmae: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
