// The contract's small shared vocabulary (ids, tensor roles): a leaf, so that its other modules can share it.

/** An open model in the engine (source or compression result). */
export type ModelId = string
/** A job the engine runs (scan, perplexity, compress, export, …). */
export type JobId = string

/** Roles an architecture adapter assigns to tensors. */
export type TensorRole =
  | 'q'
  | 'k'
  | 'v'
  | 'qkv'
  | 'o'
  | 'gate'
  | 'up'
  | 'down'
  | 'fc1'
  | 'fc2'
  | 'attn_norm'
  | 'ffn_norm'
  | 'final_norm'
  | 'embed'
  | 'pos_embed'
  | 'lm_head'
  | 'other'
