/** A command-line mistake: printed as one line, exit code 2. */
export class UsageError extends Error {}

/** Thrown by a command that stopped on Ctrl-C after saving its state: the process exits with 130. */
export class Interrupted extends Error {}
