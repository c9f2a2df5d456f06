/**
 * What the SVG charts share: escaping, an estimate of a text's width (so a
 * layout can keep every label inside the picture without a font at hand)
 * and round ("nice") axis ticks.
 *
 * @module
 */

/** `s` with the characters XML reserves escaped. */
export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Width of a character in em, a little over DejaVu Sans's (wider than Arial or Helvetica). */
function charEm(c: string): number {
  if ("il.,:;'|!j".includes(c)) return 0.34;
  if (" ft()[]-/r".includes(c)) return 0.42;
  if ("csz".includes(c)) return 0.56;
  if (c === "m" || c === "M" || c === "W") return 1;
  if (c === "w") return 0.82;
  if (/[a-z0-9]/.test(c)) return 0.64;
  if (/[A-Z]/.test(c)) return 0.78;
  return 0.86;
}

/**
 * Estimated width in pixels of `text` at `fontSize` (bold: 10% wider); an
 * upper bound for the sans-serif fonts browsers and librsvg pick.
 *
 * @example
 * ```ts
 * import { textWidth } from "./svg_text.ts";
 * textWidth("1.00", 10); // 22.6
 * ```
 */
export function textWidth(text: string, fontSize: number, bold = false): number {
  let em = 0;
  for (const c of text) em += charEm(c);
  return Math.round(em * fontSize * (bold ? 1.1 : 1) * 10) / 10;
}

/** A text's box: `x0..x1` across, `y0..y1` down (baseline at `y`, ascent 0.8 em, descent 0.25 em). */
export interface Box {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

/** The box of `text` drawn at (`x`, `y`) with `anchor` (SVG `text-anchor`). */
export function textBox(
  text: string,
  x: number,
  y: number,
  fontSize: number,
  anchor: "start" | "middle" | "end" = "start",
  bold = false,
): Box {
  const w = textWidth(text, fontSize, bold);
  const x0 = anchor === "start" ? x : anchor === "middle" ? x - w / 2 : x - w;
  return { x0, x1: x0 + w, y0: y - 0.8 * fontSize, y1: y + 0.25 * fontSize };
}

/** Whether two boxes share any area. */
export function intersects(a: Box, b: Box): boolean {
  return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

/**
 * The round step (1, 2 or 5 times a power of ten) nearest above `raw`.
 *
 * @example
 * ```ts
 * import { niceStep } from "./svg_text.ts";
 * [niceStep(0.41), niceStep(0.07), niceStep(130)]; // [0.5, 0.1, 200]
 * ```
 */
export function niceStep(raw: number): number {
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  const m = f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10;
  return m * p;
}

/**
 * Round ticks from 0 to at least `max` (about `count` intervals), each a
 * multiple of one {@linkcode niceStep}; exact decimals (no 0.30000000000000004).
 *
 * @example
 * ```ts
 * import { niceTicks } from "./svg_text.ts";
 * niceTicks(1.88, 4); // [0, 0.5, 1, 1.5, 2]
 * ```
 */
export function niceTicks(max: number, count = 5): number[] {
  const step = niceStep(max / count);
  const n = Math.max(1, Math.ceil(max / step - 1e-9));
  const digits = decimals(step);
  return Array.from({ length: n + 1 }, (_, i) => Number((i * step).toFixed(digits)));
}

/** Decimals needed to write multiples of `step` (a {@linkcode niceStep}) exactly. */
export function decimals(step: number): number {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}
