import assert from "node:assert/strict";
import {
  formatDuration,
  formatProgress,
  formatRate,
  MetricsWriter,
  ProgressBar,
  type ProgressSink,
} from "../mod.ts";

Deno.test("formatDuration and formatRate", () => {
  assert.deepEqual([0, 9.4, 59.6, 65, 600, 3599, 3725, 90000].map(formatDuration), [
    "0s",
    "9s",
    "1m00s",
    "1m05s",
    "10m00s",
    "59m59s",
    "1h02m",
    "25h00m",
  ]);
  assert.equal(formatDuration(NaN), "--");
  assert.equal(formatDuration(Infinity), "--");
  assert.deepEqual([0, 950.4, 9999, 12345, 4.2e6].map(formatRate), [
    "0",
    "950",
    "9999",
    "12.3k",
    "4.20M",
  ]);
});

Deno.test("formatProgress draws the bar, percent, loss, rate and ETA", () => {
  assert.equal(
    formatProgress({ step: 120, total: 300, loss: Math.PI, tokensPerS: 12345, etaS: 65 }),
    "step 120/300 [########            ]  40% loss 3.1416 | 12.3k tok/s | ETA 1m05s",
  );
  assert.equal(
    formatProgress({ step: 7, total: 1000, loss: 5, tokensPerS: 800, etaS: NaN }, 10),
    "step    7/1000 [          ]   0% loss 5.0000 | 800 tok/s | ETA --",
  );
  assert.equal(
    formatProgress({ step: 4, total: 4, loss: 0.5, tokensPerS: 1e6, etaS: 0 }, 4),
    "step 4/4 [####] 100% loss 0.5000 | 1.00M tok/s | ETA 0s",
  );
});

function fakeSink(terminal: boolean): ProgressSink & { text: () => string } {
  const chunks: Uint8Array[] = [];
  return {
    writeSync(p) {
      chunks.push(p.slice(0, 3)); // short writes: the bar must loop until all is written
      return Math.min(3, p.length);
    },
    isTerminal: () => terminal,
    text: () => new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c]))),
  };
}

Deno.test("on a terminal the line is redrawn in place with \\r and ended by done()", () => {
  const sink = fakeSink(true);
  let t = 100;
  const bar = new ProgressBar({ total: 10, sink, now: () => t });
  bar.update({ step: 1, loss: 2, tokensPerS: 100 });
  t += 2;
  bar.update({ step: 2, loss: 1.5, tokensPerS: 100 });
  bar.done();
  assert.equal(
    sink.text(),
    "\rstep  1/10 [##                  ]  10% loss 2.0000 | 100 tok/s | ETA --\x1b[K" +
      "\rstep  2/10 [####                ]  20% loss 1.5000 | 100 tok/s | ETA 16s\x1b[K\n",
  );
});

Deno.test("elsewhere plain lines come at the first step, every everyS seconds and at the end", () => {
  const sink = fakeSink(false);
  let t = 0;
  const bar = new ProgressBar({ total: 6, sink, everyS: 5, now: () => t });
  for (let step = 3; step <= 6; step++) { // a resumed run: steps 1-2 were done before
    bar.update({ step, loss: 1, tokensPerS: 10 });
    t += 3;
  }
  bar.done();
  const lines = sink.text().split("\n");
  assert.deepEqual(lines.map((l) => l.slice(0, 8)), ["step 3/6", "step 5/6", "step 6/6", ""]);
  assert.ok(lines[1].endsWith("ETA 3s"), lines[1]);
  assert.ok(!sink.text().includes("\r") && !sink.text().includes("\x1b"), "no redraws");
});

Deno.test("MetricsWriter appends one JSON line per record, flushed as it goes", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/metrics.jsonl`;
  Deno.writeTextFileSync(path, '{"step":0}\n');
  {
    using w = new MetricsWriter(path);
    w.append({ step: 1, loss: 2.5, aux_loss: 0.01 });
    assert.equal(
      Deno.readTextFileSync(path),
      '{"step":0}\n{"step":1,"loss":2.5,"aux_loss":0.01}\n',
    );
    w.append({ step: 2, loss: NaN });
  }
  assert.deepEqual(Deno.readTextFileSync(path).trim().split("\n").map((l) => JSON.parse(l)), [
    { step: 0 },
    { step: 1, loss: 2.5, aux_loss: 0.01 },
    { step: 2, loss: null },
  ]);
  Deno.removeSync(dir, { recursive: true });
});
