/** The progress line: no ETA until a rate has been measured, then the remaining work at that rate. */
import { describe, expect, it } from 'vitest';
import { ProgressBar } from '../../src/cli/progress';

/** A non-TTY stream that keeps what is written. */
function sink(): { stream: NodeJS.WriteStream; lines: () => string[] } {
  let text = '';
  const stream = { isTTY: false, write: (chunk: string) => ((text += chunk), true) } as unknown as NodeJS.WriteStream;
  return { stream, lines: () => text.split('\n').filter(Boolean) };
}

describe('ProgressBar', () => {
  it('prints no ETA on the first update; later ones use the rate since it, not the first step (slow: warm-up)', () => {
    const { stream, lines } = sink();
    const bar = new ProgressBar(stream);
    bar.update({ step: 1, total: 20, text: 'loss 1.0', elapsedSeconds: 30 }); // a first step with 30 s of one-time costs
    bar.update({ step: 3, total: 20, text: 'loss 0.9', elapsedSeconds: 32 }); // then 1 s a step
    expect(lines()).toHaveLength(2);
    expect(lines()[0]).toMatch(/^\[#+\.+\] 1\/20 loss 1\.0$/);
    // 17 steps left at 1 s each, not 17 · 32/3 s.
    expect(lines()[1]).toMatch(/3\/20 loss 0\.9 \| ETA 17s$/);
  });

  it('with a time budget (fraction of wall time) the ETA is the budget left', () => {
    const { stream, lines } = sink();
    const bar = new ProgressBar(stream);
    bar.update({ step: 1, total: 100, fraction: 0.01, text: 'x', elapsedSeconds: 0.6 });
    bar.update({ step: 50, total: 100, fraction: 0.5, text: 'x', elapsedSeconds: 30 });
    expect(lines()[0]).not.toMatch(/ETA/);
    expect(lines()[1]).toMatch(/ETA 30s$/);
  });
});
