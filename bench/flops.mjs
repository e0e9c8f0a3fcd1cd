/**
 * FLOP counts and GEMM shapes of the model's training step and inference, from the config alone:
 * the Linears (rows, in, out, which gradients) and attention cores a step runs. npm run bench uses
 * them for GFLOP/s and % of peak; test/native/model.test.ts checks that test/native/model/
 * model_check.cc (the GPU bench, which runs without Node) counts the same.
 */

export function geometry(c) {
  const grid = c.imageSize / c.patchSize;
  const L = grid * grid;
  const G = (grid / c.maskGroup) ** 2;
  const keep = Math.floor(G * (1 - c.maskRatio - (c.throwRatio ?? 0))); // native/model/config.h keep_groups()
  const K = keep * c.maskGroup * c.maskGroup;
  return { grid, L, G, keep, K, P: c.patchSize * c.patchSize * c.channels };
}

/**
 * Every Linear of one training step (rows R, in, out, whether its input gradient and weight
 * gradient are computed, how many times), plus the attention cores; for FLOP counts and GEMM shapes.
 */
export function stepLayers(c, B, kind) {
  const { L, K, P } = geometry(c);
  const layers = [];
  const attn = [];
  // wgradT: the weight gradient is formed transposed (in × out from wgradRows rows).
  const lin = (name, R, inF, outF, fwdOnly, count = 1, dinp = true, wgradRows = R, wgradT = false) =>
    layers.push({ name, R, in: inF, out: outF, fwdOnly, count, dinp, wgradRows, wgradT });
  const stack = (prefix, R, N, D, depth, heads, fwdOnly) => {
    const Hd = D * c.mlpRatio;
    lin(`${prefix}.qkv`, R, D, 3 * D, fwdOnly, depth);
    lin(`${prefix}.proj`, R, D, D, fwdOnly, depth);
    lin(`${prefix}.fc1`, R, D, Hd, fwdOnly, depth);
    lin(`${prefix}.fc2`, R, Hd, D, fwdOnly, depth);
    attn.push({ name: `${prefix}.attn`, B, N, D, H: heads, fwdOnly, count: depth });
  };
  if (kind === 'encode') {
    lin('enc.patch', B * L, P, c.dim, true);
    stack('enc', B * (1 + L), 1 + L, c.dim, c.depth, c.heads, true);
    return { layers, attn };
  }
  // The online patch embedding sees the visible patches only (patchify_visible); its weight
  // gradient is formed transposed: dWᵀ (P × D) = patches_visᵀ · d_vis (cmae_model.cc).
  lin('enc.patch', B * K, P, c.dim, false, 1, false, B * K, true);
  stack('enc', B * (1 + K), 1 + K, c.dim, c.depth, c.heads, false);
  const dec = (prefix, D, depth, heads, outF) => {
    lin(`${prefix}.embed`, B * (1 + K), c.dim, D, false);
    stack(prefix, B * (1 + L), 1 + L, D, depth, heads, false);
    lin(`${prefix}.pred`, B * L, D, outF, false);
  };
  dec('pixdec', c.decoderDim, c.decoderDepth, c.decoderHeads, P);
  if (c.mode === 'cmae') {
    dec('featdec', c.featureDecoderDim, c.featureDecoderDepth, c.featureDecoderHeads, c.dim);
    lin('proj.fc1', B, c.dim, c.projectorHidden, false);
    lin('proj.fc2', B, c.projectorHidden, c.projectorDim, false);
    lin('pred.fc1', B, c.projectorDim, c.projectorHidden, false);
    lin('pred.fc2', B, c.projectorHidden, c.projectorDim, false);
    lin('mom.patch', B * L, P, c.dim, true);
    stack('mom', B * (1 + L), 1 + L, c.dim, c.depth, c.heads, true);
    lin('mom.proj.fc1', B, c.dim, c.projectorHidden, true);
    lin('mom.proj.fc2', B, c.projectorHidden, c.projectorDim, true);
  }
  return { layers, attn };
}

/** Multiply-add FLOPs (2 per MAC) of one step / inference per image: GEMMs + attention products. */
export function flopsPerImage(c, B, kind) {
  const { layers, attn } = stepLayers(c, B, kind);
  let f = 0;
  for (const l of layers) {
    const fwd = 2 * l.R * l.in * l.out;
    const wgrad = 2 * l.wgradRows * l.in * l.out;
    f += l.count * (l.fwdOnly ? fwd : fwd + wgrad + (l.dinp ? fwd : 0));
  }
  for (const a of attn) {
    const fwd = 2 * 2 * a.B * a.N * a.N * a.D; // QKᵀ and AV over all heads
    f += a.count * (a.fwdOnly ? fwd : 3 * fwd); // backward: dV, dP, dQ, dK
  }
  return f / B;
}
