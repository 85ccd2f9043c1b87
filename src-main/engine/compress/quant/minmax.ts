// The min-max quantizer lives in numerics/ (the forward pass's KV-cache quantization uses it too).
export * from '../../numerics/minmax-grid'
