import assert from "node:assert/strict";
import {
  CheckpointError,
  decodeSafetensors,
  encodeSafetensors,
  expertIndex,
  expertRange,
  type HostTensor,
  mergeShards,
  shardExperts,
} from "../models/checkpoint.ts";

/** Builds a safetensors file by hand from a header object and a data buffer. */
function handMade(header: unknown, data: number[]): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  out[0] = json.length & 0xff;
  out[1] = json.length >> 8;
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("encodeSafetensors writes the documented byte layout", () => {
  const bytes = encodeSafetensors(
    new Map([["b", { shape: [2], data: new Float32Array([1, -2]) }], [
      "a",
      { shape: [], data: new Int32Array([258]) },
    ]]),
    { step: "7" },
  );
  const n = bytes[0] | (bytes[1] << 8) | (bytes[2] << 16);
  assert.deepEqual([...bytes.subarray(3, 8)], [0, 0, 0, 0, 0]);
  assert.equal(n % 8, 0, "header padded to 8 bytes");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.deepEqual(header, {
    __metadata__: { step: "7" },
    a: { dtype: "I32", shape: [], data_offsets: [0, 4] },
    b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
  });
  // 258 as int32 LE, then 1.0f and -2.0f as IEEE-754 LE
  assert.deepEqual([...bytes.subarray(8 + n)], [2, 1, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]);
});

Deno.test("decodeSafetensors reads a hand-made file and round-trips every dtype", () => {
  const file = handMade(
    { x: { dtype: "F32", shape: [1, 2], data_offsets: [0, 8] }, __metadata__: { k: "v" } },
    [0, 0, 0x80, 0x3f, 0, 0, 0, 0x40],
  );
  const { tensors, metadata } = decodeSafetensors(file);
  assert.deepEqual(metadata, { k: "v" });
  assert.deepEqual(tensors.get("x"), { shape: [1, 2], data: new Float32Array([1, 2]) });

  const all = new Map<string, HostTensor>([
    ["f32", { shape: [2, 2], data: new Float32Array([0.5, -1e-20, 3e30, NaN]) }],
    ["f64", { shape: [1], data: new Float64Array([Math.PI]) }],
    ["i32", { shape: [3], data: new Int32Array([-1, 0, 2 ** 31 - 1]) }],
    ["u8", { shape: [3], data: new Uint8Array([0, 128, 255]) }],
    ["empty", { shape: [0, 4], data: new Float32Array(0) }],
    ["sub", { shape: [2], data: new Float32Array([9, 8, 7]).subarray(1) }],
  ]);
  const back = decodeSafetensors(encodeSafetensors(all)).tensors;
  assert.deepEqual([...back.keys()].sort(), [...all.keys()].sort());
  for (const [k, t] of all) assert.deepEqual(back.get(k), t, k);
});

Deno.test("malformed and foreign files give a one-line CheckpointError", () => {
  const cases: [Uint8Array, string][] = [
    [new Uint8Array(3), "f: 3 bytes is too short for a safetensors file"],
    [
      new TextEncoder().encode("# Title\nsome markdown, not tensors\n"),
      "f: not a safetensors file (header length 749124160266182691 exceeds file size 35)",
    ],
    [
      handMade("x".repeat(5), []).map((b, i) => i === 9 ? 0xff : b),
      "f: not a safetensors file (header is not valid JSON)",
    ],
    [handMade([1, 2], []), "f: not a safetensors file (header is not a JSON object)"],
    [handMade({ __metadata__: { a: 1 } }, []), "f: __metadata__ is not a map of strings"],
    [
      handMade({ w: { dtype: "BF16", shape: [1], data_offsets: [0, 2] } }, [0, 0]),
      'f: tensor w: unsupported dtype "BF16"',
    ],
    [
      handMade({ w: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, [0, 0, 0, 0]),
      "f: tensor w: shape is not a list of sizes",
    ],
    [
      handMade({ w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, [0, 0, 0, 0]),
      "f: tensor w: data_offsets [0,8] outside 4 data bytes",
    ],
    [
      handMade({ w: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, [0, 0, 0, 0]),
      "f: tensor w: 4 bytes do not fit F32 [2]",
    ],
    [
      handMade({ w: { dtype: "U8", shape: [1], data_offsets: [1, 2] } }, [0, 0]),
      "f: tensor w: data starts at 1, expected 0",
    ],
    [
      handMade({ w: { dtype: "U8", shape: [1], data_offsets: [0, 1] } }, [0, 0]),
      "f: 1 data bytes after the last tensor",
    ],
  ];
  for (const [bytes, message] of cases) {
    assert.throws(() => decodeSafetensors(bytes, "f"), (e: Error) => {
      assert.ok(e instanceof CheckpointError);
      assert.equal(e.name, "CheckpointError");
      assert.equal(e.message, message);
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
  }
  assert.equal(new CheckpointError("a\n  b").message, "a b");
});

Deno.test("expert names, ranges and shards", () => {
  assert.equal(expertIndex("blocks.3.moe.experts.5.w1"), 5);
  assert.equal(expertIndex("blocks.3.moe.experts.12.w1.adam_v"), 12);
  assert.equal(expertIndex("experts.0.w"), 0);
  assert.equal(expertIndex("blocks.3.moe.gate.w"), null);
  assert.equal(expertIndex("blocks.3.moe.shared_experts.w"), null);
  assert.deepEqual([0, 1, 2, 3].map((r) => expertRange(r, 4, 8)), [[0, 2], [2, 4], [4, 6], [6, 8]]);
  assert.deepEqual([0, 1, 2, 3].map((r) => expertRange(r, 4, 6)), [[0, 1], [1, 3], [3, 4], [4, 6]]);
  assert.throws(() => expertRange(0, 4, 2), {
    name: "RangeError",
    message: "2 experts cannot be shared by 4 ranks (need at least one each)",
  });
  assert.throws(() => expertRange(2, 2, 4), {
    name: "RangeError",
    message: "rank 2 is not in a group of 2",
  });
  const names = [
    "wte",
    "b.1.experts.0.w1",
    "b.1.experts.1.w1",
    "b.1.experts.2.w1",
    "b.1.experts.3.w1",
  ];
  assert.deepEqual(shardExperts(names, 1, 2, 4), ["wte", "b.1.experts.2.w1", "b.1.experts.3.w1"]);
  assert.deepEqual(shardExperts(names, 0, 1, 4), names);
});

Deno.test("mergeShards joins ranks and refuses disagreeing replicas or doubled experts", () => {
  const t = (x: number): HostTensor => ({ shape: [1], data: new Float32Array([x]) });
  const merged = mergeShards([
    new Map([["wte", t(1)], ["m.experts.0.w", t(2)]]),
    new Map([["wte", t(1)], ["m.experts.1.w", t(3)]]),
  ]);
  assert.deepEqual([...merged.keys()], ["wte", "m.experts.0.w", "m.experts.1.w"]);
  assert.throws(() => mergeShards([new Map([["wte", t(1)]]), new Map([["wte", t(1.5)]])]), {
    message: "replicas of wte differ across ranks",
  });
  assert.throws(
    () => mergeShards([new Map([["m.experts.0.w", t(2)]]), new Map([["m.experts.0.w", t(2)]])]),
    { message: "expert tensor m.experts.0.w came from two ranks" },
  );
});
