/**
 * The pictures a pre-training run leaves behind: loss curves (SVG rendered to PNG by sharp, so
 * axes carry real text) and reconstruction grids (a row per image; columns: original | masked input | reconstruction).
 */
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic';

export interface LossPoint {
  step: number;
  loss: number;
  reconstruction: number;
  contrastive: number;
}

const COLORS = { loss: '#1f77b4', reconstruction: '#2ca02c', contrastive: '#d62728' };

export function niceTicks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] as string);
}

/** Writes a PNG line chart of the loss parts per step. */
export async function renderLossPlot(points: LossPoint[], file: string, title = 'cmae pre-training loss'): Promise<void> {
  const width = 900;
  const height = 520;
  const margin = { left: 70, right: 170, top: 50, bottom: 55 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const series = (['loss', 'reconstruction', 'contrastive'] as const).filter((key) => points.some((p) => p[key] !== 0));
  const xs = points.map((p) => p.step);
  const ys = points.flatMap((p) => series.map((k) => p[k])).filter(Number.isFinite);
  const xMin = Math.min(...xs, 0);
  const xMax = Math.max(...xs, 1);
  const yMin = Math.min(0, ...ys);
  const yMax = Math.max(...ys, 1e-6) * 1.05;
  const sx = (x: number) => margin.left + ((x - xMin) / (xMax - xMin || 1)) * plotW;
  const sy = (y: number) => margin.top + plotH - ((y - yMin) / (yMax - yMin || 1)) * plotH;
  const parts: string[] = [];
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(`<text x="${width / 2}" y="28" font-family="sans-serif" font-size="18" text-anchor="middle">${escapeXml(title)}</text>`);
  for (const t of niceTicks(yMin, yMax, 6)) {
    parts.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${margin.left - 8}" y="${sy(t) + 4}" font-family="sans-serif" font-size="12" text-anchor="end">${t}</text>`);
  }
  for (const t of niceTicks(xMin, xMax, 8)) {
    parts.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${margin.top + plotH}" y2="${margin.top + plotH + 5}" stroke="#333"/>`);
    parts.push(`<text x="${sx(t)}" y="${margin.top + plotH + 20}" font-family="sans-serif" font-size="12" text-anchor="middle">${t}</text>`);
  }
  parts.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${margin.left + plotW / 2}" y="${height - 12}" font-family="sans-serif" font-size="14" text-anchor="middle">step</text>`);
  series.forEach((key, i) => {
    const path = points.filter((p) => Number.isFinite(p[key])).map((p) => `${sx(p.step).toFixed(1)},${sy(p[key]).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${path}" fill="none" stroke="${COLORS[key]}" stroke-width="1.8"/>`);
    const ly = margin.top + 20 + i * 24;
    parts.push(`<line x1="${width - margin.right + 15}" x2="${width - margin.right + 45}" y1="${ly}" y2="${ly}" stroke="${COLORS[key]}" stroke-width="3"/>`);
    parts.push(`<text x="${width - margin.right + 52}" y="${ly + 4}" font-family="sans-serif" font-size="13">${key}</text>`);
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
  await writeFileAtomic(file, await sharp(Buffer.from(svg)).png().toBuffer());
}

export interface ReconstructionRow {
  /** (C, S, S) values in [0, 1]. */
  original: Float32Array;
  masked: Float32Array;
  reconstruction: Float32Array;
}

/** Writes a grid: one row per image, three panels each, upscaled `scale`× with nearest neighbour. */
export async function renderReconstructionGrid(rows: ReconstructionRow[], channels: number, size: number, file: string, scale = 4): Promise<void> {
  const gap = 4;
  const panel = size * scale;
  const width = 3 * panel + 4 * gap;
  const height = rows.length * panel + (rows.length + 1) * gap;
  const rgb = new Uint8Array(width * height * 3).fill(255);
  rows.forEach((row, r) => {
    [row.original, row.masked, row.reconstruction].forEach((img, col) => {
      const x0 = gap + col * (panel + gap);
      const y0 = gap + r * (panel + gap);
      for (let y = 0; y < panel; y++) {
        for (let x = 0; x < panel; x++) {
          const sy = Math.floor(y / scale);
          const sxp = Math.floor(x / scale);
          for (let c = 0; c < 3; c++) {
            const v = img[(channels === 3 ? c : 0) * size * size + sy * size + sxp];
            rgb[((y0 + y) * width + x0 + x) * 3 + c] = Math.round(255 * Math.min(1, Math.max(0, v)));
          }
        }
      }
    });
  });
  await writeFileAtomic(file, await sharp(rgb, { raw: { width, height, channels: 3 } }).png().toBuffer());
}

/** One method's top-1 scores for renderScoreBars (fractions in 0..1). */
export interface ScoreRow {
  name: string;
  knn: number;
  linear: number;
}

/**
 * Writes a PNG bar chart: k-NN and linear-probe top-1 per method, with the baselines (e.g. raw
 * pixels, random-init) as dashed lines across the plot.
 */
export async function renderScoreBars(rows: ScoreRow[], baselines: ScoreRow[], file: string, title: string): Promise<void> {
  const width = Math.max(640, 130 * rows.length + 260);
  const height = 480;
  const margin = { left: 60, right: 200, top: 50, bottom: 60 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const values = [...rows, ...baselines].flatMap((r) => [r.knn, r.linear]).filter(Number.isFinite);
  const yMin = Math.max(0, Math.floor((Math.min(...values) - 0.05) * 10) / 10);
  const yMax = Math.min(1, Math.ceil((Math.max(...values) + 0.02) * 20) / 20);
  const sy = (y: number) => margin.top + plotH - ((y - yMin) / (yMax - yMin || 1)) * plotH;
  const colors = { knn: '#1f77b4', linear: '#ff7f0e' };
  const parts: string[] = [`<rect width="${width}" height="${height}" fill="white"/>`];
  parts.push(`<text x="${width / 2}" y="28" font-family="sans-serif" font-size="18" text-anchor="middle">${escapeXml(title)}</text>`);
  for (const t of niceTicks(yMin, yMax, 6)) {
    parts.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${margin.left - 8}" y="${sy(t) + 4}" font-family="sans-serif" font-size="12" text-anchor="end">${(100 * t).toFixed(0)}%</text>`);
  }
  const slot = plotW / Math.max(1, rows.length);
  rows.forEach((r, i) => {
    const x0 = margin.left + i * slot + slot * 0.15;
    const bar = slot * 0.35;
    (['knn', 'linear'] as const).forEach((key, j) => {
      const v = r[key];
      if (!Number.isFinite(v)) return;
      const x = x0 + j * bar;
      parts.push(`<rect x="${x.toFixed(1)}" y="${sy(v).toFixed(1)}" width="${(bar - 2).toFixed(1)}" height="${(sy(yMin) - sy(v)).toFixed(1)}" fill="${colors[key]}"/>`);
      parts.push(`<text x="${(x + bar / 2).toFixed(1)}" y="${(sy(v) - 4).toFixed(1)}" font-family="sans-serif" font-size="11" text-anchor="middle">${(100 * v).toFixed(1)}</text>`);
    });
    parts.push(`<text x="${(margin.left + (i + 0.5) * slot).toFixed(1)}" y="${margin.top + plotH + 20}" font-family="sans-serif" font-size="13" text-anchor="middle">${escapeXml(r.name)}</text>`);
  });
  const dashes = ['6,4', '2,3', '10,3,2,3'];
  baselines.forEach((b, i) => {
    (['knn', 'linear'] as const).forEach((key) => {
      if (!Number.isFinite(b[key])) return;
      parts.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${sy(b[key])}" y2="${sy(b[key])}" stroke="${colors[key]}" stroke-dasharray="${dashes[i % dashes.length]}" stroke-width="1.5"/>`);
    });
    const ly = margin.top + 80 + i * 22;
    parts.push(`<line x1="${width - margin.right + 15}" x2="${width - margin.right + 45}" y1="${ly}" y2="${ly}" stroke="#555" stroke-dasharray="${dashes[i % dashes.length]}" stroke-width="1.5"/>`);
    parts.push(`<text x="${width - margin.right + 52}" y="${ly + 4}" font-family="sans-serif" font-size="13">${escapeXml(b.name)}</text>`);
  });
  (['knn', 'linear'] as const).forEach((key, i) => {
    const ly = margin.top + 20 + i * 22;
    parts.push(`<rect x="${width - margin.right + 15}" y="${ly - 7}" width="30" height="12" fill="${colors[key]}"/>`);
    parts.push(`<text x="${width - margin.right + 52}" y="${ly + 4}" font-family="sans-serif" font-size="13">${key === 'knn' ? 'k-NN top-1' : 'linear top-1'}</text>`);
  });
  parts.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
  await writeFileAtomic(file, await sharp(Buffer.from(svg)).png().toBuffer());
}
