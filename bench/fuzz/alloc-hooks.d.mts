export declare function installAllocationHooks(note: (bytes: number) => void): void
export declare const ALLOCATION_CHANNEL: string
