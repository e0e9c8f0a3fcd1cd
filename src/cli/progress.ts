/** A one-line progress display on stderr (redrawn in place on a TTY, periodic lines otherwise). */
export interface ProgressState {
  step: number;
  total: number;
  /** Fraction done (0..1); defaults to step / total. */
  fraction?: number;
  text: string;
  elapsedSeconds: number;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  if (h > 0) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

export class ProgressBar {
  private readonly tty: boolean;
  private lastLine = 0;
  private lastPrintedTwentieth = -1;
  /** The first update's position: the rate is measured from it, so the first step's one-time costs do not skew the ETA. */
  private origin?: { elapsedSeconds: number; fraction: number };

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly enabled = true,
  ) {
    this.tty = Boolean(stream.isTTY);
  }

  update(state: ProgressState): void {
    if (!this.enabled) return;
    const fraction = state.fraction ?? (state.total > 0 ? state.step / state.total : 0);
    this.origin ??= { elapsedSeconds: state.elapsedSeconds, fraction };
    // No ETA until a rate has been measured between two updates.
    const done = fraction - this.origin.fraction;
    const eta = done > 0 ? ((state.elapsedSeconds - this.origin.elapsedSeconds) / done) * (1 - fraction) : undefined;
    const width = 24;
    const filled = Math.round(width * fraction);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const line = `${bar} ${state.step}/${state.total} ${state.text}${eta !== undefined ? ` | ETA ${formatDuration(eta)}` : ''}`;
    if (this.tty) {
      const now = Date.now();
      if (now - this.lastLine < 100 && fraction < 1) return;
      this.lastLine = now;
      const columns = this.stream.columns || 120;
      this.stream.write(`\r${line.slice(0, columns - 1).padEnd(Math.min(columns - 1, line.length))}\x1b[K`);
    } else {
      // Plain logs: about twenty lines per run.
      const twentieth = Math.floor(fraction * 20);
      if (twentieth === this.lastPrintedTwentieth && fraction < 1) return;
      this.lastPrintedTwentieth = twentieth;
      this.stream.write(`${line}\n`);
    }
  }

  done(): void {
    if (this.enabled && this.tty) this.stream.write('\n');
  }

  log(message: string): void {
    if (!this.enabled) return;
    if (this.tty) this.stream.write('\r\x1b[K');
    this.stream.write(`${message}\n`);
  }
}

export { formatDuration };
