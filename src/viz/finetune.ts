/**
 * The pictures a fine-tuning run leaves behind: the learning curve (held-out top-1 and the mean
 * training loss per epoch, on two axes) and the best epoch's confusion matrix. SVG rendered to PNG
 * by sharp, written atomically.
 */
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic';
import { escapeXml, niceTicks } from './pictures';

const text = (x: number, y: number, s: string, size = 12, anchor = 'middle', extra = '') =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-family="sans-serif" font-size="${size}" text-anchor="${anchor}"${extra}>${escapeXml(s)}</text>`;

async function writeSvg(file: string, width: number, height: number, parts: string[]): Promise<void> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
  await writeFileAtomic(file, await sharp(Buffer.from(svg)).png().toBuffer());
}

/** Top-1 (left axis, %) and training loss (right axis) per epoch. */
export async function renderLearningCurve(epochs: { epoch: number; top1: number; trainLoss: number }[], file: string, title: string): Promise<void> {
  const width = 900;
  const height = 520;
  const m = { left: 70, right: 80, top: 50, bottom: 55 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const xMax = Math.max(1, ...epochs.map((e) => e.epoch));
  const accs = epochs.map((e) => e.top1);
  const aMin = Math.max(0, Math.floor((Math.min(...accs, 1) - 0.02) * 20) / 20);
  const losses = epochs.map((e) => e.trainLoss).filter(Number.isFinite);
  const lMax = Math.max(...losses, 1e-6) * 1.05;
  const sx = (x: number) => m.left + (xMax > 1 ? ((x - 1) / (xMax - 1)) * plotW : plotW / 2);
  const sa = (a: number) => m.top + plotH - ((a - aMin) / (1 - aMin || 1)) * plotH;
  const sl = (l: number) => m.top + plotH - (l / lMax) * plotH;
  const parts = [`<rect width="${width}" height="${height}" fill="white"/>`, text(width / 2, 28, title, 18)];
  for (const t of niceTicks(aMin, 1, 6)) {
    parts.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${sa(t)}" y2="${sa(t)}" stroke="#e5e5e5"/>`);
    parts.push(text(m.left - 8, sa(t) + 4, `${(100 * t).toFixed(0)}%`, 12, 'end', ' fill="#1f77b4"'));
  }
  for (const t of niceTicks(0, lMax, 6)) parts.push(text(m.left + plotW + 8, sl(t) + 4, String(t), 12, 'start', ' fill="#d62728"'));
  for (const t of niceTicks(1, xMax, Math.min(10, xMax))) if (Number.isInteger(t)) parts.push(text(sx(t), m.top + plotH + 20, String(t)));
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  parts.push(text(m.left + plotW / 2, height - 12, 'epoch', 14));
  const line = (ys: (e: (typeof epochs)[number]) => number, color: string) => {
    const pts = epochs.filter((e) => Number.isFinite(ys(e))).map((e) => `${sx(e.epoch).toFixed(1)},${ys(e).toFixed(1)}`);
    parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of pts) parts.push(`<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="3" fill="${color}"/>`);
  };
  line((e) => sa(e.top1), '#1f77b4');
  line((e) => sl(e.trainLoss), '#d62728');
  parts.push(text(m.left + 10, m.top + 18, 'held-out top-1', 13, 'start', ' fill="#1f77b4"'));
  parts.push(text(m.left + 10, m.top + 36, 'training loss (right axis)', 13, 'start', ' fill="#d62728"'));
  await writeSvg(file, width, height, parts);
}

/** The confusion matrix: rows the true class, columns the predicted one, cells shaded by the row's share. */
export async function renderConfusionMatrix(confusion: Int32Array, numClasses: number, file: string, title: string, classNames?: string[]): Promise<void> {
  const C = numClasses;
  const cell = Math.max(14, Math.min(48, Math.floor(560 / C)));
  const m = { left: 110, top: 70, right: 30, bottom: 70 };
  const width = m.left + C * cell + m.right;
  const height = m.top + C * cell + m.bottom;
  const name = (c: number) => classNames?.[c] ?? String(c);
  const parts = [`<rect width="${width}" height="${height}" fill="white"/>`, text(width / 2, 28, title, 16)];
  for (let t = 0; t < C; t++) {
    let row = 0;
    for (let p = 0; p < C; p++) row += confusion[t * C + p];
    for (let p = 0; p < C; p++) {
      const n = confusion[t * C + p];
      const share = row > 0 ? n / row : 0;
      const shade = Math.round(255 - 200 * Math.sqrt(share));
      const x = m.left + p * cell;
      const y = m.top + t * cell;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="rgb(${shade},${shade},255)" stroke="#ddd"/>`);
      if (cell >= 24 && n > 0) parts.push(text(x + cell / 2, y + cell / 2 + 4, String(n), Math.min(12, cell / 3), 'middle', share > 0.5 ? ' fill="white"' : ''));
    }
    if (cell >= 14) {
      parts.push(text(m.left - 6, m.top + t * cell + cell / 2 + 4, name(t), 11, 'end'));
      parts.push(text(m.left + t * cell + cell / 2, m.top + C * cell + 16, name(t), 11));
    }
  }
  parts.push(text(m.left + (C * cell) / 2, height - 18, 'predicted class', 13));
  parts.push(text(18, m.top + (C * cell) / 2, 'true class', 13, 'middle', ` transform="rotate(-90 18 ${m.top + (C * cell) / 2})"`));
  await writeSvg(file, width, height, parts);
}
