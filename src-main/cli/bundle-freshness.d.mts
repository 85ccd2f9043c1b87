/** The checkout this file belongs to. */
export declare const CLI_ROOT: string
/** Where build-cli.mjs writes the bundle under a checkout's root. */
export declare function cliBundleDir(root?: string): string
/** Null when the bundle under `root` is built and no source file of it changed since, else why it cannot be used. */
export declare function cliBundleProblem(root?: string): string | null
