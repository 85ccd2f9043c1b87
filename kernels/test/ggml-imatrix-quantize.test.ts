// Quantization with an importance matrix (llama-quantize --imatrix) against llama.cpp's own output in
// ../shared/reference/gguf-golden/imatrix/: every tensor of small-llama-imatrix-<TYPE>.gguf byte for byte,
// with the importances computed from imatrix.gguf as llama-quantize does (Σx² / count per column).
// Plus the properties that hold without a golden file: the types that ignore an imatrix give the plain
// bytes, the weighted fits lower the importance-weighted error, and bad arguments are refused.

import { beforeAll, describe, expect, it } from 'vitest'
import { BLOCK_GEOMETRY, dequantizeBlocks, type BlockType } from '../reference/ggml-dequant-all'
import { quantizeBlocks } from '../reference/ggml-quantize-all'
import { IMATRIX_TYPES, quantizeRowsWeighted } from '../reference/ggml-quantize-imatrix'
import { openModelFiles } from '../../src-main/engine/formats/open'
import { readTensorBytes, readTensorF32 } from '../../src-main/engine/formats/read'
import { hasShared, shared, SKIP_SHARED } from '../../src-main/engine/testing/shared-data'
import { QUANT_SCRATCH_BYTES, type KernelName } from '../host/exports'
import { loadKernels, normalish, rng, type KernelHarness } from '../testing/kernel-harness'

let h: KernelHarness
beforeAll(async () => {
  h = await loadKernels()
})

type Call6 = (a: number, b: number, c: number, d: number, e: number, f: number) => void

/** The WASM kernel's bytes for W [rows, cols] with importances; checks nothing is written past dst or scratch. */
function wasmWeighted(
  type: BlockType,
  w: Float32Array,
  rows: number,
  cols: number,
  importance: Float32Array,
  misalign = 0,
): Uint8Array {
  const bytes = rows * rowBytes(type, cols)
  h.reset()
  const src = h.put(w.subarray(0, rows * cols), misalign)
  const qw = h.put(importance, misalign + 1)
  const dst = h.alloc(bytes + 16, misalign + 2)
  const scratch = h.alloc(QUANT_SCRATCH_BYTES + 16, 1)
  const name = `quantize_${type.toLowerCase()}_imatrix` as KernelName
  ;(h.k as unknown as Record<KernelName, Call6>)[name](src, dst, rows, cols, qw, scratch)
  expect(
    h.u8(dst + bytes, 16).every((b) => b === 0xcd),
    `${type}: bytes written past the output`,
  ).toBe(true)
  expect(
    h.u8(scratch + QUANT_SCRATCH_BYTES, 16).every((b) => b === 0xcd),
    `${type}: bytes written past the scratch`,
  ).toBe(true)
  return h.u8(dst, bytes).slice()
}

/** Per-column importances of every tensor in an imatrix GGUF: in_sum2 / counts, in f32 (load_imatrix). */
async function importances(file: string): Promise<Map<string, Float32Array>> {
  const im = await openModelFiles(file)
  const out = new Map<string, Float32Array>()
  for (const t of im.tensors) {
    if (!t.name.endsWith('.in_sum2')) continue
    const name = t.name.slice(0, -'.in_sum2'.length)
    const counts = im.tensors.find((c) => c.name === `${name}.counts`)
    expect(counts, name).toBeDefined()
    const count = (await readTensorF32(counts!))[0]
    out.set(
      name,
      (await readTensorF32(t)).map((v) => Math.fround(v / count)),
    )
  }
  return out
}

function rowBytes(type: BlockType, cols: number): number {
  return (cols / BLOCK_GEOMETRY[type].elements) * BLOCK_GEOMETRY[type].bytes
}

if (!hasShared) console.log(`[kernels/ggml-imatrix-quantize.test] golden check: ${SKIP_SHARED}`)

describe.skipIf(!hasShared)('llama-quantize --imatrix --pure of small-llama, byte for byte', () => {
  const dir = (name: string) => shared('reference', 'gguf-golden', 'imatrix', name)
  for (const type of ['Q4_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'IQ4_XS'] as const) {
    it(`${type}: every 2-D weight (token_embd and output without importances)`, async () => {
      const imp = await importances(dir('imatrix.gguf'))
      const source = await openModelFiles(dir('small-llama-tok-f32.gguf'))
      const target = await openModelFiles(dir(`small-llama-imatrix-${type}.gguf`))
      const weights = source.tensors.filter((t) => t.shape.length === 2)
      expect(weights).toHaveLength(16)
      let weighted = 0
      for (const entry of weights) {
        const [rows, cols] = entry.shape
        const q = target.tensors.find((t) => t.name === entry.name)!
        expect(q.dtype).toBe(type)
        const want = await readTensorBytes(q, 0, q.byteLength)
        const got = new Uint8Array(rows * rowBytes(type, cols))
        const importance = imp.get(entry.name) ?? null
        if (importance) weighted++
        const x = await readTensorF32(entry)
        quantizeRowsWeighted(type, x, rows, cols, importance, got)
        expect(
          got.findIndex((b, i) => b !== want[i]),
          `${entry.name}: first differing byte`,
        ).toBe(-1)
        if (importance) {
          const wasm = wasmWeighted(type, x, rows, cols, importance)
          expect(
            wasm.findIndex((b, i) => b !== want[i]),
            `WASM, ${entry.name}: first differing byte`,
          ).toBe(-1)
        }
      }
      expect(weighted).toBe(14) // every tensor but token_embd and output
    })
  }
})

describe('weighted quantization without golden files', () => {
  const rows = 4,
    cols = 512
  const w = normalish(rng(5), rows * cols, 0.05)
  const importance = Float32Array.from({ length: cols }, (_, c) => (c % 7 === 0 ? 50 : 0.01 + (c % 5)))

  it('Q8_0, TQ1_0 and TQ2_0 ignore the importances, as llama.cpp does', () => {
    for (const type of ['Q8_0', 'TQ1_0', 'TQ2_0'] as const) {
      expect(IMATRIX_TYPES).not.toContain(type)
      const plain = new Uint8Array(rows * rowBytes(type, cols))
      quantizeBlocks(type, w, w.length, plain)
      const got = new Uint8Array(plain.length)
      quantizeRowsWeighted(type, w, rows, cols, importance, got)
      expect(got).toEqual(plain)
    }
  })

  for (const type of IMATRIX_TYPES) {
    it(`${type}: lower importance-weighted error than the plain quantization`, () => {
      const error = (bytes: Uint8Array) => {
        const y = new Float32Array(rows * cols)
        dequantizeBlocks(type, bytes, y.length, y)
        let e = 0
        for (let i = 0; i < y.length; i++) e += importance[i % cols] * (y[i] - w[i]) ** 2
        return e
      }
      const plain = new Uint8Array(rows * rowBytes(type, cols))
      quantizeBlocks(type, w, w.length, plain)
      const weighted = new Uint8Array(plain.length)
      quantizeRowsWeighted(type, w, rows, cols, importance, weighted)
      expect(error(weighted)).toBeLessThan(error(plain))
      // No importance: exactly the plain bytes.
      const none = new Uint8Array(plain.length)
      quantizeRowsWeighted(type, w, rows, cols, null, none)
      expect(none).toEqual(plain)
    })
  }

  for (const type of IMATRIX_TYPES) {
    it(`${type}: the WASM kernel equals the twin on hostile rows and importances`, () => {
      const random = rng(17 + type.length)
      const cols256 = 512
      const gauss = () => normalish(random, 1)[0]
      const rowsOf = (f: (i: number) => number) => Float32Array.from({ length: 3 * cols256 }, (_, i) => f(i))
      const cases: Array<[string, Float32Array, Float32Array]> = [
        ['gaussian', rowsOf(() => gauss() * 0.02), importance],
        [
          'zeros and quiet groups',
          rowsOf((i) => ((i >> 4) % 3 === 0 ? 0 : (i >> 5) % 4 === 1 ? gauss() * 1e-6 : gauss())),
          importance,
        ],
        [
          'outliers, zero importances',
          rowsOf((i) => (i % 97 === 5 ? 300 : gauss())),
          Float32Array.from({ length: cols256 }, (_, c) => (c % 3 ? 0 : 2)),
        ],
        ['subnormals', rowsOf(() => gauss() * 2 ** -140), importance],
        ['constant rows', rowsOf((i) => (i < cols256 ? 0.5 : -2)), importance],
        ['NaN and infinities', rowsOf((i) => (i % 41 === 3 ? NaN : i % 53 === 7 ? Infinity : gauss())), importance],
        ['huge importances', rowsOf(() => gauss()), Float32Array.from({ length: cols256 }, () => 1e30 * random())],
      ]
      for (const [name, x, imp] of cases) {
        const want = new Uint8Array(3 * rowBytes(type, cols256))
        quantizeRowsWeighted(type, x, 3, cols256, imp, want)
        const got = wasmWeighted(type, x, 3, cols256, imp, name.length % 4)
        expect(
          got.findIndex((b, i) => b !== want[i]),
          name,
        ).toBe(-1)
      }
    })
  }

  // The legacy kernels fit eight blocks at a time across rows: block counts that leave a partial group
  // (15 = 8 + 7, 7, 1), with a NaN row in one quad only, must still match the twin block for block.
  for (const type of IMATRIX_TYPES.filter((t) => t.startsWith('Q4_') || t.startsWith('Q5_')).filter(
    (t) => !t.endsWith('K'),
  )) {
    it(`${type}: the WASM kernel equals the twin when the blocks do not fill whole groups of eight`, () => {
      const random = rng(29)
      const gauss = () => normalish(random, 1)[0]
      for (const [rows, cols] of [
        [5, 96],
        [7, 32],
        [1, 32],
      ]) {
        const x = Float32Array.from({ length: rows * cols }, (_, i) =>
          i >= 3 * 32 && i < 4 * 32 && i % 5 === 0 ? NaN : gauss(),
        )
        const imp = Float32Array.from({ length: cols }, (_, c) => 0.1 + (c % 9))
        const want = new Uint8Array(rows * rowBytes(type, cols))
        quantizeRowsWeighted(type, x, rows, cols, imp, want)
        const got = wasmWeighted(type, x, rows, cols, imp, rows % 4)
        expect(
          got.findIndex((b, i) => b !== want[i]),
          `${rows} × ${cols}`,
        ).toBe(-1)
      }
    })
  }

  // The WASM kernels fit four blocks at a time, across row ends, padding the last group: block counts that
  // are no multiple of four, rows of 1 to 7 blocks, and rows with different σ² in one group.
  for (const type of ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'IQ4_NL'] as const) {
    it(`${type}: the WASM kernel equals the twin when groups of four blocks span rows or end short`, () => {
      const random = rng(41 + type.length)
      for (const [rowCount, blocks] of [
        [1, 1],
        [3, 3],
        [5, 7],
        [2, 6],
      ]) {
        const cols32 = 32 * blocks
        const x = Float32Array.from(
          { length: rowCount * cols32 },
          (_, i) => (1 + Math.floor(i / cols32)) * (random() - 0.4),
        )
        const imp = Float32Array.from({ length: cols32 }, () => random() * 3)
        const want = new Uint8Array(rowCount * rowBytes(type, cols32))
        quantizeRowsWeighted(type, x, rowCount, cols32, imp, want)
        const got = wasmWeighted(type, x, rowCount, cols32, imp)
        expect(
          got.findIndex((b, i) => b !== want[i]),
          `${rowCount} rows of ${blocks} blocks`,
        ).toBe(-1)
      }
    })
  }

  it('refuses partial blocks, short buffers and importances of the wrong length', () => {
    expect(() => quantizeRowsWeighted('Q4_K', w, 2, 100, null, new Uint8Array(1000))).toThrow(RangeError)
    expect(() => quantizeRowsWeighted('Q4_0', w, rows, cols, importance, new Uint8Array(10))).toThrow(/destination/)
    expect(() =>
      quantizeRowsWeighted(
        'Q4_0',
        w,
        rows,
        cols,
        importance.subarray(1),
        new Uint8Array(rows * rowBytes('Q4_0', cols)),
      ),
    ).toThrow(/importances/)
  })
})
