import { info } from '../runtime';

export async function runInfo(options: { json?: boolean }): Promise<void> {
  const i = info();
  if (options.json) {
    process.stdout.write(`${JSON.stringify(i, null, 2)}\n`);
    return;
  }
  const rows: [string, string][] = [
    ['cmae', i.version],
    ['build', `${i.buildType} (${i.buildSystem}, ${i.compiler})`],
    ['node', `${i.node} ${i.platform}, N-API ${i.napiVersion}`],
    ['SIMD path', `${i.isa} (best on this CPU: ${i.bestIsa}; force with CMAE_ISA=avx2)`],
    ['threads', `${i.threads} (default ${i.defaultThreads}, OpenMP ${i.openmp ? 'on' : 'off'})`],
    ['CUDA', i.cuda.compiled ? `compiled in; ${i.cuda.status}` : i.cuda.status],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
}
