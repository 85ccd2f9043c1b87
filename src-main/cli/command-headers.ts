// Each command's name, synopsis and one-line summary, declared here rather than in its module so that the
// top-level usage (`whittle --help`) is printed without importing any command: main.ts imports a command's
// module only when that command runs. Each module's CommandSpec spreads its header and adds the options.

import type { CommandSpec } from './command-spec'

export type CommandHeader = Pick<CommandSpec, 'name' | 'args' | 'summary'>

export const INSPECT_HEADER: CommandHeader = {
  name: 'inspect',
  args: 'PATH',
  summary: 'architecture summary and a per-tensor table (stats and outlier channels) from a full scan',
}

export const EVAL_HEADER: CommandHeader = {
  name: 'eval',
  args: 'MODEL',
  summary: 'perplexity on a text: tokenized once with one BOS, non-overlapping windows (the GPTQ protocol)',
}

export const COMPRESS_HEADER: CommandHeader = {
  name: 'compress',
  args: 'MODEL',
  summary: 'run a compression recipe, measure its cost in perplexity, export the result atomically and verified',
}

export const CONVERT_HEADER: CommandHeader = {
  name: 'convert',
  args: 'MODEL',
  summary: 'conversions without calibration: HF or GGUF Llama → GGUF of a type, GGUF → HF safetensors',
}

export const IMATRIX_HEADER: CommandHeader = {
  name: 'imatrix',
  args: 'MODEL',
  summary: 'an importance matrix (Σx² per input channel of every block Linear), as llama-imatrix computes it',
}

export const SERVE_HEADER: CommandHeader = {
  name: 'serve',
  args: '',
  summary: 'web mode: the app in your browser, the engine in this process (prints the URL with its token)',
}
