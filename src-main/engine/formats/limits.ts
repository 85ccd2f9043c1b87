// Caps on what a model file may declare, in one place. Each sits well above the largest real model we know
// of, so no real checkpoint meets one, and each is checked before the parsing work it bounds: a hostile file
// that claims a million tensors is refused in microseconds instead of costing seconds and gigabytes.

/**
 * Tensors in one safetensors header, one index's weight_map, or one GGUF's tensor infos. The largest real
 * figure is a sharded MoE index: DeepSeek-V3's weight_map lists about 92k tensors (256 experts × 58 MoE
 * layers × 3 projections, each with its FP8 scale). Single files hold a few thousand at most.
 * 2^17 leaves ~40% margin over that and is the "about 100k" the readers promise.
 */
export const MAX_TENSORS = 1 << 17

/**
 * The safetensors reference (huggingface/safetensors) refuses headers over 100 MB; so do we. With
 * MAX_TENSORS entries of ~200 bytes a legal header stays near 26 MB, so this only matters for metadata.
 */
export const MAX_SAFETENSORS_HEADER_BYTES = 100_000_000

/**
 * GGUF key/value pairs. llama.cpp's converters write 20–60 (one per hyperparameter plus the tokenizer's);
 * 4096 is two orders of magnitude above that.
 */
export const MAX_GGUF_KVS = 4096

/**
 * Bytes of GGUF metadata outside the tokenizer.* keys. Real files carry well under 64 KiB there (names,
 * hyperparameters, licence text); 1 MiB leaves a wide margin and bounds the work of walking them.
 */
export const MAX_GGUF_METADATA_BYTES = 1 << 20

/** Key prefix of the GGUF tokenizer KVs, which hold whole vocabularies and get their own caps. */
export const GGUF_TOKENIZER_PREFIX = 'tokenizer.'

/**
 * Items in one tokenizer.* array (tokens, scores, token types, merges). The largest real vocabularies are
 * ~262k tokens (Gemma 3) and the longest merge lists ~280k (Llama 3); 2^20 is about 4× either.
 */
export const MAX_GGUF_TOKENIZER_ITEMS = 1 << 20

/**
 * Bytes of all tokenizer.* KVs together: 2^20 tokens of up to a few dozen bytes each, plus scores, types,
 * merges, chat templates, and an embedded tokenizer.huggingface.json. Real files stay under ~20 MB.
 */
export const MAX_GGUF_TOKENIZER_BYTES = 128 << 20

/**
 * tokenizer.json. The largest real ones (Gemma 3, 262k tokens with merges) are ~33 MB; 50 MB is the cap the
 * hardening issue set, well above that and far below the 200 MB file that took 91 s and 2.5 GB to parse.
 */
export const MAX_TOKENIZER_JSON_BYTES = 50 << 20

/** config.json, generation_config.json, tokenizer_config.json: real ones are a few KB (or ~1 MB with chat templates). */
export const MAX_CONFIG_JSON_BYTES = 16 << 20

/**
 * model.safetensors.index.json: about 100 bytes per weight_map entry, so MAX_TENSORS entries come to
 * ~13 MB; DeepSeek-V3's real index is under 10 MB.
 */
export const MAX_INDEX_JSON_BYTES = 16 << 20

/**
 * Headers and tokenizers smaller than this parse on the calling thread: they take milliseconds, less than
 * handing them to the parser worker would. Larger ones go to the worker so the event loop stays free.
 */
export const INLINE_PARSE_BYTES = 1 << 20
