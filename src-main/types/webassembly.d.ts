// TypeScript ships the WebAssembly JS API types only in lib.dom / lib.webworker, and @types/node 20
// does not declare them. The engine runs in Node (and Electron's main process), so declare the subset it uses.

declare namespace WebAssembly {
  interface MemoryDescriptor {
    initial: number
    maximum?: number
    shared?: boolean
  }
  class Memory {
    constructor(descriptor: MemoryDescriptor)
    readonly buffer: ArrayBuffer | SharedArrayBuffer
    grow(delta: number): number
  }
  interface ModuleImportDescriptor {
    module: string
    name: string
    kind: 'function' | 'global' | 'memory' | 'table' | 'tag'
  }
  interface ModuleExportDescriptor {
    name: string
    kind: 'function' | 'global' | 'memory' | 'table' | 'tag'
  }
  class Module {
    constructor(bytes: BufferSource)
    static imports(module: Module): ModuleImportDescriptor[]
    static exports(module: Module): ModuleExportDescriptor[]
  }
  type ImportValue = ((...args: never[]) => unknown) | Memory | Global | number
  type Imports = Record<string, Record<string, ImportValue>>
  type Exports = Record<string, unknown>
  class Instance {
    constructor(module: Module, imports?: Imports)
    readonly exports: Exports
  }
  class Global {
    constructor(descriptor: { value: string; mutable?: boolean }, v?: number)
    value: number
  }
  interface WebAssemblyInstantiatedSource {
    module: Module
    instance: Instance
  }
  function compile(bytes: BufferSource): Promise<Module>
  function instantiate(bytes: BufferSource, imports?: Imports): Promise<WebAssemblyInstantiatedSource>
  function instantiate(module: Module, imports?: Imports): Promise<Instance>
  function validate(bytes: BufferSource): boolean
  class CompileError extends Error {}
  class RuntimeError extends Error {}
  class LinkError extends Error {}
}
