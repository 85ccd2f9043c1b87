// Placeholder entry; the kernel modules are re-exported from here.
export function version(): i32 { return 1 }
