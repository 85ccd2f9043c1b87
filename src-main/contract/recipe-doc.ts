// The recipe as the contract carries it: what the UI edits, the CLI reads from YAML and the engine validates.
// A leaf of the contract, so that api.ts and sweep.ts can both build on it without importing each other.

export type SweepValue = number | string | boolean

/** Run the recipe once per value of one step's parameter (see sweep.ts). */
export interface RecipeSweep {
  /** 1-based step number, as the UI and error messages count steps (default 1). */
  step?: number
  param: string
  values: SweepValue[]
}

export interface RecipeDoc {
  calibration?: { text?: string; samples?: number; seqlen?: number; seed?: number; starts?: number[] }
  steps: { method: string; targets?: { include?: string[]; exclude?: string[] }; params?: Record<string, unknown> }[]
  overrides?: Record<string, Record<string, unknown>>
  /** Run the recipe once per value of one step's parameter (see sweep.ts). */
  sweep?: RecipeSweep
  /**
   * The KV cache the compressed model's perplexity is measured with, as `whittle eval --kv` takes it
   * ('token:4', 'kivi:2', 'q8_0', …; kv-cache-settings.ts lists the usual ones); absent = unquantized.
   */
  kv_cache?: string
}
