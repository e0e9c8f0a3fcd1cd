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
    ['addon', `${i.addon.path} (${i.addon.source})`],
    ['node', `${i.node} ${i.platform}, N-API ${i.napiVersion}`],
    ['SIMD path', `${i.isa} (best on this CPU: ${i.bestIsa}; force with CMAE_ISA=avx2 or portable)`],
    ['threads', `${i.threads} (default ${i.defaultThreads}, OpenMP ${i.openmp ? 'on' : 'off'})`],
    ['matmuls (cpu)', i.matmulPrecision],
    ['CUDA', i.cuda.compiled ? `compiled in (${i.cuda.build === 'emulated' ? 'the SIMT emulator' : 'nvcc'}); ${i.cuda.status}` : i.cuda.status],
    ...i.cuda.devices.map((d): [string, string] => [
      `  cuda:${d.index}`,
      `${d.name}, compute capability ${d.computeCapability}, ${d.multiprocessors} SMs, ${(d.memoryBytes / 2 ** 30).toFixed(1)} GiB; matmuls: cmae's own kernels (mma.sync tf32/bf16, SIMT fp32)`,
    ]),
    ['distributed', i.distributed.plugin ? `MPI plugin ${i.distributed.plugin}${i.distributed.launchedByMpi ? ' (this process was started by an MPI launcher)' : ''}` : 'no MPI plugin (the build found no MPI: apt install libopenmpi-dev, then npm rebuild cmae)'],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
}
