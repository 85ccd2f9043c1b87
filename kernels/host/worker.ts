// Placeholder; replaced by the pool worker host.
export {}
