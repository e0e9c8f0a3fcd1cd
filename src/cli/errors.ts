/** A command-line mistake: printed as one line, exit code 2. */
export class UsageError extends Error {}

/** Thrown by a command that stopped on Ctrl-C after saving its state: the process exits with 130. */
export class Interrupted extends Error {}

/**
 * Ctrl-C during a long command: the first SIGINT logs `message` and aborts `signal` (the command
 * stops cleanly at its next step), a second one exits with 130 at once. release() stops listening.
 * A rank of a distributed job also takes SIGUSR2 as its Ctrl-C: what `cmae launch` sends through
 * mpirun, which forwards SIGUSR2 to the ranks but ends the job on SIGINT.
 */
export function catchInterrupts(log: (message: string) => void, message: string, signals: NodeJS.Signals[] = ['SIGINT']): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  let interrupts = 0;
  const onInterrupt = () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    log(`${message} (Ctrl-C again to quit now)`);
    controller.abort();
  };
  for (const s of signals) process.on(s, onInterrupt);
  return { signal: controller.signal, release: () => signals.forEach((s) => process.off(s, onInterrupt)) };
}

/** Thrown by a command whose outcome is another program's exit status (cmae launch: mpirun's). */
export class ExitStatus extends Error {
  constructor(readonly status: number) {
    super(`exit status ${status}`);
  }
}
