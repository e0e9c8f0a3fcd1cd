// Types of bench/flops.mjs for the TypeScript tests that import it.
export function geometry(config: object): { grid: number; L: number; G: number; keep: number; K: number; P: number };
export function stepLayers(config: object, batch: number, kind: 'train' | 'encode'): { layers: object[]; attn: object[] };
/** Multiply-add FLOPs (2 per MAC) per image of one training step or inference. */
export function flopsPerImage(config: object, batch: number, kind: 'train' | 'encode'): number;
