// The KV-cache settings offered by name: what the KV-cache analysis measures when none are asked for and
// what the recipe builder's select lists. Each is a setting text as `whittle eval --kv` takes it; the
// engine parses them (engine/forward/kv-cache-quant.ts, the one parser), so any other valid text works too.

export const KV_CACHE_SETTINGS: readonly string[] = [
  'token:8',
  'token:4',
  'token:2',
  'kivi:4',
  'kivi:2',
  'q8_0',
  'q5_1',
  'q5_0',
  'q4_1',
  'q4_0',
  'iq4_nl',
]
